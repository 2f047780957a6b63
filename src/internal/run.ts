/**
 * The lifecycle core every mode shares: the serve loop (wait for a connection or a wake, respect the backoff, run
 * once) and one run of the app through the phases of lifecycle.ts (idle → starting → running → stopping → idle),
 * one function per transition. A Mode gives what differs between socket hand-off (Activator) and relaying
 * (Proxy): what to spawn, when the app is ready, how its activity is seen, and what becomes of the connections
 * soad holds. The idle decision is internal/idle.ts's, for every mode.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import { AppNotify, type NotifySocket } from "../AppNotify.js"
import { Budget } from "../Budget.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import { event, type Fields } from "../Logging.js"
import * as Metrics from "../Metrics.js"
import { type App, SpawnError, type SpawnRequest, type Started } from "../ProcessService.js"
import { ProcessService } from "../ProcessService.js"
import type { Status } from "../Registry.js"
import type { Listener } from "../SocketService.js"
import * as Backoff from "./backoff.js"
import * as Format from "./format.js"
import * as Idle from "./idle.js"
import * as NotifyMessage from "./notifyMessage.js"
import {
  conclude,
  count,
  enter,
  failedWith,
  logFailing,
  makeTracker,
  now,
  onShutdown,
  type Outcome,
  preciseNow,
  register,
  type Run,
  stopPolicy,
  type Tracker
} from "./lifecycle.js"

/**
 * Why a run starts: a connection (on this listener, if known; `started`: on the cold path, the app it already
 * started, or why that failed), or `soad wake`.
 */
export type Trigger =
  | {
    readonly _tag: "Connection"
    readonly listener?: Listener | undefined
    readonly started?: Either.Either<Started, SpawnError> | undefined
  }
  | { readonly _tag: "Wake" }

/** A service being served: its config, what it knows of itself, its backoff. */
export interface Service {
  readonly config: ServiceConfig.ServiceConfig
  readonly listeners: ReadonlyArray<Listener>
  readonly tracker: Tracker
  readonly backoff: Backoff.Backoff
}

/** What a mode gives one run of the app, set up in the run's scope. */
export interface Session {
  readonly request: SpawnRequest
  /** The latest activity (Clock ms), for the budget and `soad status`. */
  readonly lastActivity: Effect.Effect<number>
  /** Said after "app started (pid N, …" (proxy: the upstream address), and the started event's extra fields. */
  readonly startedNote?: string
  readonly startedFields?: Fields
  /** What the app accepts once ready, for the ready event ("connections", "on 127.0.0.1:8000"). */
  readonly accepts: string
  /** What a start that never became ready did not do, for the not_ready event. */
  readonly notReady: string
  /** Completes once the app is ready; bounded by the start timeout by the core. */
  readonly awaitReady: Effect.Effect<void>
  /** The app is ready (proxy: the held connections go to it). */
  readonly onReady: Effect.Effect<void>
  /** One look at the app's activity: the idle decision (internal/idle.ts). */
  readonly look: Effect.Effect<Idle.Decision>
  /** Proxy mode: hold new connections from the outcome on, close relays after the stop, drop held ones on failure. */
  readonly hooks?: Pick<Run, "beforeStop" | "afterStop" | "afterFailure">
  /** Looked at before a failed start's app is stopped; the effect it returns runs once the run has concluded. */
  readonly diagnose?: (app: App) => Effect.Effect<Effect.Effect<void>>
}

/** A way of running a service: what starts a run, and each run's session. */
export interface Mode<R> {
  /**
   * The next reason to start: a connection or a wake; undefined if there is none after all (the connection went
   * away meanwhile, or a listener woke the wait only because an app had shut it down). An app it started (the cold
   * path) lives in the scope given, which the run's outlives.
   */
  readonly next: Effect.Effect<Trigger | undefined, never, R | Scope.Scope>
  /** Does a connection still wait (looked at after a backoff delay)? */
  readonly stillWaiting: Effect.Effect<boolean, never, R>
  /** Sets up one run; `activity` is the activity soad itself saw (the start), which the session reads and moves. */
  readonly session: (trigger: Trigger, activity: Ref.Ref<number>) => Effect.Effect<Session, never, R | Scope.Scope>
  /** Extra figures for `soad status` (proxy: open connections, bytes relayed). */
  readonly status?: Effect.Effect<Partial<Status>>
}

const because = (trigger: Trigger): string =>
  trigger._tag === "Wake"
    ? "on request (soad wake)"
    : trigger.listener === undefined
    ? "on a connection"
    : `on a connection to ${trigger.listener.description}`

/** Transition: the spawn failed (idle stays idle): count it, log it, drop what waited, move the backoff. */
const startFailed = (service: Service, session: Session, error: SpawnError) =>
  Effect.gen(function*() {
    yield* failedWith(service.tracker, `cannot start the app: ${error.message}`)
    const state = yield* service.backoff.failed
    yield* count(service.tracker, "failedStarts")
    yield* Metric.increment(Metrics.forService(Metrics.failedStarts, service.config.name))
    yield* event("error", "start_failed", `cannot start the app: ${error.message}`, { code: error.code })
    if (session.hooks?.afterFailure !== undefined) yield* session.hooks.afterFailure("the app cannot start")
    yield* logFailing(state, yield* now)
  })

/** Transition idle → starting: the app exists. */
const spawned = (service: Service, session: Session, app: App, trigger: Trigger, startedAt: number, spawnMs: number) =>
  Effect.gen(function*() {
    yield* enter(service.tracker, { _tag: "Spawned", pid: app.pid, startedAt })
    yield* Ref.set(service.tracker.lastStart, { at: startedAt, coldStartMs: undefined })
    yield* count(service.tracker, "activations")
    yield* Metric.increment(Metrics.forService(Metrics.activations, service.config.name))
    const after = trigger._tag === "Wake"
      ? "on request"
      : `${Format.millis(spawnMs)} after the connection` +
        (trigger.listener === undefined ? "" : ` on ${trigger.listener.description}`)
    yield* event("info", "started", `app started (pid ${app.pid}, ${after}${session.startedNote ?? ""})`, {
      pid: app.pid,
      spawn_ms: Number(spawnMs.toFixed(3)),
      trigger: trigger._tag === "Wake" ? "wake" : "connection",
      // Started by the armed listener itself (the cold path), or by soad after the wake.
      armed: trigger._tag === "Connection" && trigger.started !== undefined,
      ...session.startedFields
    })
  })

/** Transition starting → running: the app is ready. */
const ready = (service: Service, session: Session, app: App, trigger: Trigger, pendingSince: number) =>
  Effect.gen(function*() {
    yield* enter(service.tracker, { _tag: "Ready" })
    const coldStart = (yield* preciseNow) - pendingSince
    yield* Ref.update(service.tracker.lastStart, (last) => last === undefined ? last : { ...last, coldStartMs: coldStart })
    if (trigger._tag === "Connection") {
      yield* Metric.update(Metrics.forService(Metrics.coldStart, service.config.name), coldStart / 1000)
    }
    const since = trigger._tag === "Wake" ? "the request (soad wake)" : "the connection"
    yield* event("info", "ready", `the app accepts ${session.accepts} (${Format.millis(coldStart)} after ${since})`, {
      pid: app.pid,
      cold_start_ms: Number(coldStart.toFixed(3))
    })
    yield* session.onReady
  })

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
          yield* Ref.set(tracker.appStatus, notice.text)
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
    const counter = Metrics.forService(Metrics.notifyIgnored, service)
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
const listenNotify = (service: string, tracker: Tracker, socket: NotifySocket, app: App, appUid: number | undefined, heard: Heard) =>
  Effect.gen(function*() {
    const notify = yield* AppNotify
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

/** Asks the budget for room, if there is one; `stop` is how it evicts this run. */
const reserve = (service: Service, lastActivity: Effect.Effect<number>, stop: Deferred.Deferred<string>, done: Deferred.Deferred<void>) =>
  Effect.flatMap(Effect.serviceOption(Budget), (budget) =>
    Option.isNone(budget) ? Effect.void : budget.value.reserve(service.config.name, {
      lastActivity,
      evict: (reason) => Deferred.succeed(stop, reason).pipe(Effect.zipRight(Deferred.await(done)))
    }))

/**
 * One run of the app: start it, wait until it is ready (within the start timeout), watch it until it is idle,
 * exits or is asked to stop, and conclude (stop, count, log, backoff). Interrupting it stops the app gracefully.
 */
const runOnce = <R>(service: Service, mode: Mode<R>, trigger: Trigger, pendingSince: number) =>
  Effect.gen(function*() {
    const { backoff, config, tracker } = service
    const processes = yield* ProcessService
    const activity = yield* Ref.make(yield* now)
    const session = yield* mode.session(trigger, activity)
    // The budget or `soad sleep` may ask the app to stop; `done` completes once it has.
    const stop = yield* Deferred.make<string>()
    const done = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() =>
      Deferred.succeed(done, undefined).pipe(
        Effect.zipRight(Ref.set(tracker.run, Option.none())),
        Effect.zipRight(Ref.set(tracker.appStatus, undefined)),
        Effect.zipRight(enter(tracker, { _tag: "Exited" }))
      )
    )
    yield* Ref.set(tracker.run, Option.some({ stop, done, lastActivity: session.lastActivity }))
    yield* reserve(service, session.lastActivity, stop, done)
    const started = trigger._tag === "Connection" ? trigger.started : undefined
    yield* event("debug", "starting", `starting ${config.command.join(" ")} ${because(trigger)}`)
    // `--ready notify`: a notify socket of the run's own is the app's NOTIFY_SOCKET.
    const opened = config.ready === "notify" ? yield* Effect.either((yield* AppNotify).open(config.name)) : undefined
    if (opened !== undefined && Either.isLeft(opened)) {
      const { code, message } = opened.left
      return yield* startFailed(service, session, new SpawnError({ command: config.command[0], code, message }))
    }
    const socket = opened?.right
    const request = socket === undefined ? session.request : { ...session.request, env: { ...session.request.env, NOTIFY_SOCKET: socket.path } }
    yield* Ref.set(tracker.appStatus, undefined)
    const result = started !== undefined
      ? Either.map(started, ({ app }) => app)
      : yield* Effect.either(processes.spawn(request, stopPolicy(config)))
    if (Either.isLeft(result)) return yield* startFailed(service, session, result.left)
    const app = result.right
    const startedAt = yield* now
    yield* Ref.set(activity, startedAt)
    const heard: Heard = { ready: yield* Deferred.make<void>(), deadline: yield* Ref.make(startedAt + Duration.toMillis(config.startTimeout)) }
    const appUid = config.user?.uid ?? process.getuid?.()
    if (socket !== undefined) yield* Effect.forkScoped(listenNotify(config.name, tracker, socket, app, appUid, heard))
    const awaitReady = socket === undefined ? session.awaitReady : Effect.zipRight(session.awaitReady, Deferred.await(heard.ready))
    yield* spawned(
      service,
      session,
      app,
      trigger,
      startedAt,
      started !== undefined && Either.isRight(started) ? started.right.spawnMs : (yield* preciseNow) - pendingSince
    )
    const run: Run = { config, tracker, backoff, app, startedAt, ...session.hooks }
    const exited = Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status }))
    const watch = Effect.gen(function*() {
      const notReady = yield* Effect.raceFirst(
        exited,
        Effect.raceFirst(
          Effect.as(awaitReady, undefined),
          Effect.as(untilDeadline(heard.deadline), { _tag: "NotReady" } satisfies Outcome)
        )
      )
      if (notReady !== undefined) return notReady
      yield* ready(service, session, app, trigger, pendingSince)
      return yield* Effect.raceFirst(
        exited,
        Effect.map(Idle.untilIdle(session.look), (idleFor): Outcome => ({ _tag: "Idle", idleFor }))
      )
    })
    const outcome = yield* Effect.raceFirst(
      watch,
      Effect.map(Deferred.await(stop), (reason): Outcome => ({ _tag: "Stopped", reason }))
    ).pipe(onShutdown(run))
    if (run.beforeStop !== undefined) yield* run.beforeStop
    // A failed start: look, before the app is stopped, at what may explain it.
    const failedStart = (outcome._tag === "NotReady" || outcome._tag === "Exited") &&
      (yield* Ref.get(tracker.phase)).phase === "starting"
    const explain = failedStart && session.diagnose !== undefined ? yield* session.diagnose(app) : Effect.void
    const notReady = socket !== undefined && !(yield* Deferred.isDone(heard.ready))
      ? "did not send READY=1 on its NOTIFY_SOCKET"
      : session.notReady
    yield* conclude(run, outcome, notReady)
    yield* explain
  }).pipe(Effect.scoped)

/** One turn of the serve loop: wait for a reason to start, let the backoff pass for a connection, run once. */
const serveOnce = <R>(service: Service, mode: Mode<R>) =>
  Effect.gen(function*() {
    const trigger = yield* mode.next
    if (trigger === undefined) return
    // On the cold path the app started at the wake: the times are counted from it.
    const started = trigger._tag === "Connection" ? trigger.started : undefined
    let pendingSince = (yield* preciseNow) - (started !== undefined && Either.isRight(started) ? started.right.sinceWake() : 0)
    const { failures, notBefore } = yield* service.backoff.state
    const t = yield* now
    // A wake by hand does not wait for the backoff.
    if (trigger._tag === "Connection" && started === undefined && notBefore > t) {
      yield* event(
        "debug",
        "waiting",
        `a connection waits${trigger.listener === undefined ? "" : ` on ${trigger.listener.description}`}; next try in ${
          Format.seconds(notBefore - t)
        } (${failures} failure${failures === 1 ? "" : "s"} in a row)`
      )
      yield* Effect.sleep(Duration.millis(notBefore - t))
      // The connection may have given up meanwhile: start only for one still waiting.
      if (!(yield* mode.stillWaiting)) return
      pendingSince = yield* preciseNow
    }
    yield* runOnce(service, mode, trigger, pendingSince)
  }).pipe(Effect.scoped)

/**
 * Serves a service in a mode, forever: registers it (status, wake, sleep) if there is a Registry, then waits for
 * a reason to start and runs the app, again and again. Interrupting it stops a running app gracefully first.
 */
export const serve = <R, R2>(
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  makeMode: (service: Service) => Effect.Effect<Mode<R>, never, R2 | Scope.Scope>
): Effect.Effect<never, never, Exclude<R | R2, Scope.Scope> | ProcessService> =>
  Effect.gen(function*() {
    // Scoped, not Effect.annotateLogs around it: that would keep frames on every idle service's fiber.
    yield* Effect.annotateLogsScoped({ service: config.name })
    const service: Service = {
      config,
      listeners,
      tracker: yield* makeTracker,
      backoff: yield* Backoff.make(config.initialBackoff, config.maxBackoff)
    }
    const mode = yield* makeMode(service)
    yield* register(config, listeners, service.tracker, service.backoff, mode.status)
    return yield* Effect.forever(serveOnce(service, mode))
  }).pipe(Effect.scoped)
