/**
 * Proxy mode, for apps that know nothing of socket activation and bind their own port: soad accepts each
 * connection itself, starts the app, waits until its upstream address accepts, and relays bytes both ways.
 * Connections that arrive while the app starts are held and relayed in arrival order once it is up. Activity is
 * exact: a connection opened or a byte relayed either way; an open connection with no bytes for -t does not keep
 * the app running.
 *
 * Out of file descriptors, soad stops accepting for a moment (100 ms doubling to 1 s) and resumes by itself; the
 * connections wait in the kernel's backlog, and one that cannot be relayed is closed and logged, never dropped
 * silently. At most `maxHeld` connections are held while the app starts; more wait in the backlog.
 *
 * @since 0.1.0
 */
import type { AppNotify } from "../AppNotify.js"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Address from "../Address.js"
import type { Budget } from "../Budget.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import * as Idle from "../core/idle.js"
import * as Monotonic from "../core/monotonic.js"
import { now, spawnRequest } from "../core/lifecycle.js"
import * as Relay from "../os/relay.js"
import * as AppRun from "../core/appRun.js"
import * as Shell from "../core/shell.js"
import * as Refusals from "./refusals.js"
import * as WaitingPage from "./waitingPage.js"
import { event } from "../Logging.js"
import type { AppLogs } from "../observe/appLogs.js"
import * as Metrics from "../observe/metrics.js"
import type { ProcessService } from "../ProcessService.js"
import type { Registry } from "../Registry.js"
import * as RelayService from "../RelayService.js"
import type { Conn, Target } from "../RelayService.js"
import type { Listener } from "../SocketService.js"

const describe = (target: Target) => "path" in target ? target.path : Address.format({ _tag: "Tcp", ...target })

/** What the relayer reports: fd exhaustion and recovery, a connection that could not be relayed, held ones full. */
type Notice = Relay.Pressure | ({ readonly _tag: "Failed" } & Relay.Failure) | { readonly _tag: "Full" }

/** Failures in a row with the same reason become one, with their count. */
const runs = (notices: ReadonlyArray<Notice>): Array<{ readonly notice: Notice; count: number }> => {
  const out: Array<{ readonly notice: Notice; count: number }> = []
  for (const notice of notices) {
    const last = out.at(-1)?.notice
    if (
      notice._tag === "Failed" && last?._tag === "Failed" && last.syscall === notice.syscall && last.code === notice.code
    ) out.at(-1)!.count++
    else out.push({ notice, count: 1 })
  }
  return out
}

/** Logs a batch of notices in order (counts are read once per batch). */
const report = (
  service: string,
  notices: ReadonlyArray<Notice>,
  counts: { readonly held: number; readonly relayed: number; readonly maxHeld: number }
): Effect.Effect<void> =>
  Effect.forEach(runs(notices), ({ count, notice }) => {
    const { held, maxHeld, relayed } = counts
    switch (notice._tag) {
      case "Exhausted":
        return event(
          "warn",
          "fd_exhausted",
          `out of file descriptors (${notice.syscall}: ${notice.code}, limit ${notice.limit ?? "unlimited"}, ${held} held, ` +
            `${relayed} relayed): not accepting for a moment, new connections wait in the backlog; raise the limit ` +
            "(ulimit -n, LimitNOFILE=) or lower --max-held",
          { code: notice.code, syscall: notice.syscall, limit: notice.limit, held, relayed }
        )
      case "Recovered":
        return event("info", "fd_recovered", `file descriptors are available again: accepting (${held} held, ${relayed} relayed)`, {
          limit: notice.limit,
          held,
          relayed
        })
      case "Full":
        return event("info", "held_full", `holding ${maxHeld} connections (--max-held) while the app starts: more wait in the backlog`, {
          max_held: maxHeld
        })
      case "Failed":
        return Metric.incrementBy(Metrics.forService(Metrics.relayFailures, service), count).pipe(
          Effect.zipRight(event(
            "warn",
            "relay_failed",
            `closed ${count} connection${count === 1 ? "" : "s"} that could not be relayed to the app (${notice.syscall}: ${notice.code})`,
            { connections: count, syscall: notice.syscall, code: notice.code }
          ))
        )
    }
  }, { discard: true })

/** Where the app is asked to listen, and what it is told of it (PORT with `--upstream auto`). */
const upstreamOf = (relay: RelayService.RelayService["Type"], upstream: ServiceConfig.Upstream) =>
  Effect.gen(function*() {
    const address: Target = upstream._tag === "Auto"
      ? { host: "127.0.0.1", port: yield* Effect.orDie(relay.freePort) }
      : upstream._tag === "Unix"
      ? { path: upstream.path }
      : { host: upstream.host, port: upstream.port }
    const env: Record<string, string> = upstream._tag === "Auto" && "port" in address
      ? { PORT: String(address.port), SOAD_UPSTREAM: describe(address) }
      : { SOAD_UPSTREAM: describe(address) }
    return { address, env }
  })

/** A failed service waits this long for a held client's first bytes (to answer an HTTP request 503), then closes it. */
const firstBytesMillis = 1000

/** Does a held connection's first bytes look like an HTTP/1 request (a method token, then a space)? */
const looksLikeHttp = (bytes: Uint8Array): boolean => {
  let i = 0
  while (i < bytes.length && i < 16 && bytes[i]! >= 0x41 && bytes[i]! <= 0x5a) i++ // A-Z
  return i > 0 && i < bytes.length && bytes[i] === 0x20
}

/** What an HTTP client of a failed service gets: 503, and why, in one line. */
const unavailable = (service: string): Uint8Array => {
  const body = `${service} is failed: its app could not be started; soad refuses connections until it is reset\n`
  return Buffer.from(
    `HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Cache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    "utf8"
  )
}

/** A held request whose head is not complete is looked at again this much later... */
const recheckMillis = 100

/**
 * ...for this long at most: a head still incomplete then (a slow or hostile client, up to 16 KiB each, and as many
 * connections as --max-held) is not looked at again; it waits for the app.
 */
const partialMillis = 2000

/** A waiting page answered: the client has this long to read it and close before soad closes the connection. */
const lingerAfterPage = Duration.seconds(5)

/**
 * The waiting page (`--waiting-page`): each held connection is looked at once it has waited `after` (by the
 * Clock), and again every 100 ms while its request head is incomplete; a browser navigation is answered with the
 * page and leaves the held ones, anything else waits for the app as before.
 */
const waitingPages = (options: {
  readonly config: ServiceConfig.ServiceConfig
  readonly page: ServiceConfig.WaitingPage
  readonly relayer: RelayService.Relayer
  readonly held: Array<Conn>
  /** After a held connection leaves: stop or resume accepting (--max-held). */
  readonly updateHold: () => void
}) =>
  Effect.gen(function*() {
    const { config, held, page, relayer, updateHold } = options
    const afterMillis = Duration.toMillis(page.after)
    const retryAfter = Math.max(1, Math.ceil(afterMillis / 1000))
    const text = page.file !== undefined
      ? WaitingPage.customPage(page.file.text, config.name)
      : WaitingPage.defaultPage(config.name, retryAfter)
    const answers = { GET: WaitingPage.response("GET", text, retryAfter), HEAD: WaitingPage.response("HEAD", text, retryAfter) }
    const clock = yield* Effect.clock
    /** When each held connection is looked at next (Clock ms); gone once it is known to wait for the app. */
    const due = new Map<Conn, number>()
    /** When each held connection arrived (Clock ms), for the log. */
    const arrivals = new Map<Conn, number>()
    /** A connection was held. */
    const arrived = yield* Queue.sliding<void>(1)
    let served = 0

    const answer = (conn: Conn, method: "GET" | "HEAD", waited: number) =>
      Effect.gen(function*() {
        const at = held.indexOf(conn)
        if (at < 0) return // relayed or dropped meanwhile
        held.splice(at, 1)
        updateHold()
        relayer.answer(conn, answers[method])
        served++
        yield* Metric.increment(Metrics.forService(Metrics.waitingPages, config.name))
        yield* event("debug", "waiting_page", `answered a ${method} navigation with the waiting page after ${waited} ms`, {
          method,
          waited_ms: waited
        })
        // Closed after the linger, or at once if the service ends first (a reload, a shutdown): never left open.
        const close = Effect.sync(() => relayer.close(conn))
        yield* Effect.forkScoped(Effect.sleep(lingerAfterPage).pipe(Effect.ensuring(close)))
      })

    /** Looks at one held connection whose time has come. */
    const look = (conn: Conn, t: number) => {
      const bytes = relayer.peek(conn)
      const verdict: WaitingPage.Verdict = bytes === undefined ? { _tag: "Wait" } : WaitingPage.classify(bytes)
      const waited = t - (arrivals.get(conn) ?? t)
      if (verdict._tag === "Partial" && waited < afterMillis + partialMillis) {
        due.set(conn, t + recheckMillis)
        return Effect.void
      }
      due.delete(conn)
      arrivals.delete(conn)
      return verdict._tag === "Page" ? answer(conn, verdict.method, waited) : Effect.void
    }

    /** One step: wait for a held connection or the next one due, then look at those due. */
    const step = Effect.gen(function*() {
      const still = new Set(held)
      for (const conn of due.keys()) {
        if (!still.has(conn)) {
          due.delete(conn)
          arrivals.delete(conn)
        }
      }
      if (due.size === 0) return yield* Queue.take(arrived)
      const t = yield* now
      let next = Number.POSITIVE_INFINITY
      for (const at of due.values()) next = Math.min(next, at)
      if (next > t) return yield* Effect.sleep(Duration.millis(next - t))
      for (const [conn, at] of [...due]) if (at <= t) yield* look(conn, t)
    })
    yield* Effect.forkScoped(Effect.forever(step))

    return {
      /** A connection is held from now on. */
      held: (conn: Conn) => {
        const t = Monotonic.unsafeNow(clock)
        due.set(conn, t + afterMillis)
        arrivals.set(conn, t)
        Queue.unsafeOffer(arrived, undefined)
      },
      served: () => served
    }
  })

/**
 * Proxy mode: soad accepts on the listeners itself; a held connection (or `soad wake`) starts the app, which is
 * ready once its upstream address listens; the held connections are relayed then, in arrival order; activity is
 * a connection opened or a byte relayed; on a failed start the held connections are closed.
 */
const proxy = (relay: RelayService.RelayService["Type"], mode: ServiceConfig.Proxy) => (service: Shell.Service) =>
  Effect.gen(function*() {
    const { config, listeners, tracker } = service
    const relayer = yield* relay.relayer
    const clock = yield* Effect.clock
    /** When each held connection came (Clock ms), for a failed service's refusal. */
    const heldSince = new Map<Conn, number>()
    /** Connections waiting for the app, in arrival order. */
    const held: Array<Conn> = []
    /** Where connections go now; undefined while no app accepts (they are held). */
    let target: Target | undefined
    const maxHeld = mode.maxHeld ?? Relay.defaultMaxHeld(yield* relay.fdLimit)
    /** What the relayer reports from its callbacks, logged by one fiber in order. */
    const notices = yield* Queue.unbounded<Notice>()
    /** Stops accepting while `maxHeld` connections are held, accepts again below. */
    let full = false
    const updateHold = () => {
      if (full === held.length >= maxHeld) return
      full = !full
      relayer.hold(full)
      if (full) Queue.unsafeOffer(notices, { _tag: "Full" })
    }
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      const batch = yield* Queue.takeBetween(notices, 1, Number.MAX_SAFE_INTEGER)
      const stats = yield* relayer.stats
      yield* report(config.name, Chunk.toReadonlyArray(batch), { held: held.length, relayed: stats.open, maxHeld })
    })))
    const onFail = (failure: Relay.Failure) => Queue.unsafeOffer(notices, { _tag: "Failed", ...failure })
    const pages = mode.waitingPage === undefined
      ? undefined
      : yield* waitingPages({ config, page: mode.waitingPage, relayer, held, updateHold })
    /** A connection is held (false) or `soad wake` asked (true). */
    const arrived = yield* Queue.sliding<boolean>(2)
    yield* Effect.acquireRelease(
      Effect.sync(() => tracker.wake.subscribe(() => Queue.unsafeOffer(arrived, true))),
      (unsubscribe) => Effect.sync(unsubscribe)
    )
    yield* relayer.listen(listeners.map((listener) => listener.fd), (conn) => {
      if (target !== undefined) return relayer.connect(conn, target, onFail)
      held.push(conn)
      heldSince.set(conn, Monotonic.unsafeNow(clock))
      updateHold()
      pages?.held(conn)
      Queue.unsafeOffer(arrived, false)
    }, (pressure) => Queue.unsafeOffer(notices, pressure))
    yield* Effect.addFinalizer(() => Effect.sync(() => held.splice(0).forEach(relayer.close)))

    /** Held connections whose client is still there. */
    const waiting = Effect.sync(() => {
      for (let i = held.length - 1; i >= 0; i--) {
        if (relayer.gone(held[i]!)) heldSince.delete(held.splice(i, 1)[0]!)
      }
      updateHold()
      return held.length
    })

    const dropHeld = (why: string) =>
      Effect.suspend(() => {
        const dropped = held.splice(0)
        heldSince.clear()
        updateHold()
        dropped.forEach(relayer.close)
        return dropped.length === 0
          ? Effect.void
          : event("warn", "dropped", `closed ${dropped.length} waiting connection${dropped.length === 1 ? "" : "s"}: ${why}`, {
            connections: dropped.length
          })
      })


    const session = (_trigger: Shell.Trigger, activity: Ref.Ref<number>) =>
      Effect.gen(function*() {
        const { address, env } = yield* upstreamOf(relay, mode.upstream)
        // When the run ends: the relays left are closed (the app has exited); if its app failed, the connections
        // that waited for it are closed too, with the reason.
        yield* Effect.addFinalizer((exit) =>
          Effect.suspend(() => {
            target = undefined
            relayer.closeRelayed()
            const why = AppRun.failure(exit)
            return why === undefined ? Effect.void : dropHeld(why)
          })
        )
        const lastActivity = Effect.zipWith(Ref.get(activity), relayer.stats, (own, stats) => Math.max(own, stats.lastActivity ?? own))
        return {
          // The app gets no socket in this mode: it binds its upstream address itself.
          request: { ...spawnRequest(config, [], env), fds: [], fdNames: [] },
          lastActivity,
          startedNote: `; upstream ${describe(address)}`,
          startedFields: { upstream: describe(address) },
          accepts: `on ${describe(address)}`,
          notReady: `did not listen on ${describe(address)}`,
          awaitReady: relay.awaitListening(address),
          // Up: the idle time starts now, and the held connections go first, in arrival order.
          onReady: Effect.flatMap(now, (t) =>
            Effect.zipRight(
              Ref.set(activity, t),
              Effect.sync(() => {
                for (const conn of held.splice(0)) relayer.connect(conn, address, onFail)
                heldSince.clear()
                target = address
                updateHold()
              })
            )),
          // Exact activity: an open connection with no bytes for -t does not keep the app.
          // -t as it is now: a reload may change it in place.
          look: Effect.zipWith(now, lastActivity, (t, last) =>
            Idle.decide({ idleMillis: Duration.toMillis(service.config.idleTimeout), recheckMillis: 0 }, { now: t, lastActivity: last, pending: false, open: 0 })),
          // New connections are held while the app stops, for its next run.
          onStop: Effect.sync(() => (target = undefined))
        } satisfies AppRun.Session
      })

    /**
     * Failed: the held connections are answered 503 (an HTTP request) and closed, at once; one whose client has
     * sent nothing yet is given up to `firstBytesMillis` for it (looked at again every 50 ms), then closed.
     */
    const refuse = Effect.gen(function*() {
      const t = yield* now
      const answered: Array<Conn> = []
      const kept: Array<Conn> = []
      for (const conn of held.splice(0)) {
        const bytes = relayer.peek(conn)
        const since = heldSince.get(conn) ?? t
        if ((bytes === undefined || bytes.length === 0) && t - since < firstBytesMillis && !relayer.gone(conn)) {
          kept.push(conn)
          continue
        }
        if (bytes !== undefined && looksLikeHttp(bytes)) relayer.answer(conn, unavailable(config.name))
        relayer.close(conn)
        heldSince.delete(conn)
        answered.push(conn)
      }
      held.push(...kept)
      updateHold()
      if (answered.length > 0) yield* Refusals.refused(config.name, answered.length)
      if (kept.length > 0) yield* Effect.sleep(Duration.millis(50))
    })

    // A held connection (or `soad wake`) starts the app; held ones left from the last run first.
    const next: Effect.Effect<Shell.Trigger | undefined> = Effect.gen(function*() {
      const polled = yield* Queue.poll(arrived)
      const wake = Option.isSome(polled) ? polled.value : held.length > 0 ? false : yield* Queue.take(arrived)
      if (!wake && (yield* waiting) === 0) return undefined // it went away while it waited
      return wake ? { _tag: "Wake" as const } : { _tag: "Connection" as const }
    })

    return {
      next: () => next,
      stillWaiting: Effect.map(waiting, (count) => count > 0),
      act: Shell.runs(service, session),
      refuse,
      status: Effect.map(relayer.stats, (stats) => ({
        openConnections: stats.open + held.length,
        relayedBytes: { in: stats.bytesIn, out: stats.bytesOut },
        ...(pages !== undefined ? { waitingPages: pages.served() } : {})
      }))
    } satisfies Shell.ModeHooks<ProcessService | AppLogs | AppNotify>
  })

/**
 * Serves a service in proxy mode on listeners already open, forever; interrupting it stops the app gracefully
 * and closes every connection.
 */
export const serve = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  mode: ServiceConfig.Proxy
): Effect.Effect<never, never, RelayService.RelayService | ProcessService | Registry | Budget | AppLogs | AppNotify> =>
  Effect.flatMap(RelayService.RelayService, (relay) => Shell.serve(config, listeners, proxy(relay, mode)))
