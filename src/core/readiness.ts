/**
 * Readiness, a policy every run of an app follows beside its mode's own sign: with `--ready accept` the mode's
 * sign alone (the app accepts; proxy: its port listens); with `--ready notify` also READY=1 on a NOTIFY_SOCKET of
 * the run's own (never soad's), which only the app's processes may speak on. The start deadline
 * (`--start-timeout`) is here too, since EXTEND_TIMEOUT_USEC moves it.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import { AppNotify, type AppNotifyApi, type NotifyError, type NotifySocket } from "../AppNotify.js"
import { event } from "../Logging.js"
import * as Counters from "../observe/counters.js"
import * as Format from "../observe/format.js"
import type { App } from "../ProcessService.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import { now, setAppStatus, type Tracker } from "./lifecycle.js"
import * as NotifyMessage from "./notifyMessage.js"

/** What a `--ready notify` run heard from its app: READY=1, and the start deadline EXTEND_TIMEOUT_USEC moves. */
interface Heard {
  readonly ready: Deferred.Deferred<void>
  /** Clock ms by which the app must be ready. */
  readonly deadline: Ref.Ref<number>
}

/** Acts on one notify message from the app: READY=1, STATUS=, STOPPING=1, EXTEND_TIMEOUT_USEC= (others ignored). */
const onNotify = (tracker: Tracker, heard: Heard, message: string) =>
  Effect.forEach(NotifyMessage.parse(message), (notice) =>
    Effect.gen(function*() {
      switch (notice._tag) {
        case "Ready":
          if (yield* Deferred.succeed(heard.ready, undefined)) yield* event("debug", "app_notify", "the app sent READY=1", { notify: "READY=1" })
          return
        case "Status":
          yield* setAppStatus(tracker, notice.text)
          return yield* event("debug", "app_notify", `the app's status: ${notice.text}`, { notify: "STATUS", app_status: notice.text })
        case "Stopping":
          return yield* event("info", "app_stopping", "the app says it is stopping (STOPPING=1)", { notify: "STOPPING=1" })
        case "ExtendTimeout": {
          if (yield* Deferred.isDone(heard.ready)) return
          const until = (yield* now) + notice.usec / 1000
          const deadline = yield* Ref.updateAndGet(heard.deadline, (d) => Math.max(d, until))
          return yield* event("debug", "app_notify", `the app asks for more time to start (${Format.millis(notice.usec / 1000)})`, {
            notify: "EXTEND_TIMEOUT_USEC",
            deadline_in_ms: deadline - (yield* now)
          })
        }
      }
    }), { discard: true })

/** How long soad waits before reading a notify socket again after a wake that brought a stranger's datagrams. */
const strangerPause = Duration.millis(20)

/**
 * Says that datagrams were ignored at most once a second, with their count since the last time (a lone one at once,
 * a flood once a second): a local user who floods the notify socket (its abstract name is listed in
 * /proc/net/unix) must not flood soad's log. Each is counted in `soad_notify_ignored_total{service}`. The state is
 * the run's notify fiber's and its one pending notice's, on one thread.
 */
const ignoredNotices = (service: string) =>
  Effect.gen(function*() {
    const counter = Counters.forService(Counters.notifyIgnored, service)
    yield* Metric.incrementBy(counter, 0) // exported at 0 before the first
    /** Since the last notice: how many, the first sender, every sender; when that notice was; whether one is due. */
    const state = { count: 0, pid: 0, uid: 0, senders: new Set<number>(), said: Number.NEGATIVE_INFINITY, due: false }
    const say = Effect.gen(function*() {
      const { count, pid, uid } = state
      const senders = state.senders.size
      if (count === 0) return
      state.count = 0
      state.senders = new Set()
      state.said = yield* now
      const others = senders - 1
      yield* event(
        "warn",
        "notify_ignored",
        `ignored ${count === 1 ? "a notify datagram" : `${count} notify datagrams`} from pid ${pid} (uid ${uid})` +
          `${others > 0 ? ` and ${others} other sender${others === 1 ? "" : "s"}` : ""}${count === 1 ? "" : " in the last second"}: not the app's`,
        { count, from_pid: pid, from_uid: uid, senders }
      )
    })
    // What waits when the run ends is said then.
    yield* Effect.addFinalizer(() => say)
    /** Counts `count` datagrams from `pid` (`uid`), said now if nothing was said in the last second, else then. */
    return (pid: number, uid: number, count: number) =>
      Effect.gen(function*() {
        yield* Metric.incrementBy(counter, count)
        if (state.count === 0) {
          state.pid = pid
          state.uid = uid
        }
        state.count += count
        state.senders.add(pid)
        if (state.due) return // the pending notice says it
        const wait = state.said + 1000 - (yield* now)
        if (wait <= 0) return yield* say
        state.due = true
        yield* Effect.forkScoped(Effect.zipRight(Effect.sleep(Duration.millis(wait)), Effect.suspend(() => {
          state.due = false
          return say
        })))
      })
  })

/**
 * Reads the app's notify socket for the whole run. Only datagrams from the app's processes count: the kernel gives
 * each sender's pid and uid (SO_PASSCRED), and the sender must be in the app's session (the app is its session's
 * leader, and no process outside it can join it). A sender already gone when soad looks (a short-lived
 * `systemd-notify --ready`) counts if its uid is the app's: such a process could steer the app anyway. Others are
 * counted and said at most once a second.
 *
 * The app's own datagrams must find room under a stranger's flood: the queue holds net.unix.max_dgram_qlen + 1 of
 * them (11 by default, whatever SO_RCVBUF says: measured), and sd_notify's blocking sendmsg waits while it is full.
 * So each wake reads every datagram waiting and looks each sender up once; after a wake that brought a stranger's
 * datagrams, soad waits `strangerPause` before reading again. Measured with `BENCH_ONLY=notify` (a stranger sending
 * as fast as it can): reading on at once cost soad 4.3 s of CPU per 10 s, the pause 0.4 s; the app's READY=1 got
 * through in 26 ms and in 60-110 ms.
 */
const listenNotify = (
  notify: AppNotifyApi,
  service: string,
  tracker: Tracker,
  socket: NotifySocket,
  app: App,
  appUid: number | undefined,
  heard: Heard
) =>
  Effect.gen(function*() {
    const ignore = yield* ignoredNotices(service)
    yield* Effect.gen(function*() {
      const messages = yield* socket.receive
      const trusted = new Map<number, boolean>()
      const strangers = new Map<number, { uid: number; count: number }>()
      for (const { message, pid, uid } of messages) {
        let ok = trusted.get(pid)
        if (ok === undefined) {
          const session = yield* notify.sessionOf(pid)
          ok = session === app.pid || (session === undefined && pid > 0 && uid === appUid)
          trusted.set(pid, ok)
        }
        if (ok) yield* onNotify(tracker, heard, message)
        else {
          const seen = strangers.get(pid)
          if (seen === undefined) strangers.set(pid, { uid, count: 1 })
          else seen.count += 1
        }
      }
      for (const [pid, { count, uid }] of strangers) yield* ignore(pid, uid, count)
      if (strangers.size > 0) yield* Effect.sleep(strangerPause)
    }).pipe(Effect.forever)
  })

/** Completes once the Clock reaches the deadline, which may move later meanwhile. */
const untilDeadline = (deadline: Ref.Ref<number>): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (;;) {
      const left = (yield* Ref.get(deadline)) - (yield* now)
      if (left <= 0) return
      yield* Effect.sleep(Duration.millis(left))
    }
  })


/** A run's readiness, once its app exists. */
export interface Watch {
  /** READY=1 heard (`--ready notify`); at once otherwise. */
  readonly ready: Effect.Effect<void>
  /** The start deadline has passed (moved later by EXTEND_TIMEOUT_USEC). */
  readonly deadline: Effect.Effect<void>
  /** What a start that never became ready did not do, if it is readiness's to say (READY=1 never came). */
  readonly notReady: Effect.Effect<string | undefined>
}

/** A run's readiness before its app exists: what the app is given, and how to watch it once it runs. */
export interface Readiness {
  /** Added to the app's environment (NOTIFY_SOCKET). */
  readonly env: Readonly<Record<string, string>>
  /** Watches the app for the run (the notify socket is read until the run's scope closes). */
  readonly watch: (app: App, startedAt: number) => Effect.Effect<Watch, never, Scope.Scope>
}

/** Readiness by the mode's sign alone. */
const bySign = (config: ServiceConfig.ServiceConfig): Readiness => ({
  env: {},
  watch: (_app, startedAt) =>
    Effect.map(Ref.make(startedAt + Duration.toMillis(config.startTimeout)), (deadline) => ({
      ready: Effect.void,
      deadline: untilDeadline(deadline),
      notReady: Effect.succeed(undefined)
    }))
})

/** The run's readiness, as `config.ready` says; a notify socket that cannot be opened fails the start. */
export const prepare = (
  config: ServiceConfig.ServiceConfig,
  tracker: Tracker
): Effect.Effect<Readiness, NotifyError, AppNotify | Scope.Scope> =>
  config.ready !== "notify" ? Effect.succeed(bySign(config)) : Effect.gen(function*() {
    const notify = yield* AppNotify
    const socket = yield* notify.open(config.name)
    return {
      env: { NOTIFY_SOCKET: socket.path },
      watch: (app, startedAt) =>
        Effect.gen(function*() {
          const heard: Heard = { ready: yield* Deferred.make<void>(), deadline: yield* Ref.make(startedAt + Duration.toMillis(config.startTimeout)) }
          const appUid = config.user?.uid ?? process.getuid?.()
          yield* Effect.forkScoped(listenNotify(notify, config.name, tracker, socket, app, appUid, heard))
          return {
            ready: Deferred.await(heard.ready),
            deadline: untilDeadline(heard.deadline),
            notReady: Effect.map(Deferred.isDone(heard.ready), (done) => done ? undefined : "did not send READY=1 on its NOTIFY_SOCKET")
          }
        })
    }
  })
