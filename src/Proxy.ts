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
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Net from "node:net"
import * as Address from "./Address.js"
import { Budget } from "./Budget.js"
import type * as Config from "./Config.js"
import * as Backoff from "./internal/backoff.js"
import * as Connections from "./internal/connections.js"
import * as Format from "./internal/format.js"
import {
  conclude,
  count,
  logFailing,
  makeTracker,
  now,
  onShutdown,
  type Outcome,
  preciseNow,
  register,
  type Run,
  spawnRequest,
  type Tracker
} from "./internal/lifecycle.js"
import * as Relay from "./internal/relay.js"
import { event } from "./Logging.js"
import * as Metrics from "./Metrics.js"
import type { App } from "./ProcessService.js"
import { ProcessService } from "./ProcessService.js"
import type { Listener, SocketService } from "./SocketService.js"

const describe = (target: Relay.Target) => "path" in target ? target.path : Address.format({ _tag: "Tcp", ...target })

/** A free TCP port on 127.0.0.1 (for `--upstream auto`). */
const freePort = Effect.async<number, Error>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.fail(error)))
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Completes once the app accepts on `target`. On Linux soad looks for its listening socket in /proc/net, so the
 * app sees no connection of soad's own; elsewhere it connects and closes at once.
 */
const awaitListening = (target: Relay.Target): Effect.Effect<void> => {
  const check: Effect.Effect<boolean> = Connections.available()
    ? Effect.sync(() => Connections.listening(target))
    : Effect.async<boolean>((resume) => {
      const probe = Net.connect(target)
      probe.once("connect", () => {
        probe.destroy()
        resume(Effect.succeed(true))
      })
      probe.once("error", () => resume(Effect.succeed(false)))
      return Effect.sync(() => probe.destroy())
    })
  return Effect.asVoid(Effect.repeat(check, { schedule: upstreamRetry, until: (up) => up }))
}

/** Looks for the app while it starts: from 10 ms, growing, at most 250 ms apart. */
const upstreamRetry = Schedule.exponential("10 millis", 1.5).pipe(Schedule.union(Schedule.spaced("250 millis")))

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

/**
 * Serves a service in proxy mode on listeners already open, forever; interrupting it stops the app gracefully
 * and closes every connection.
 */
export const serve = (
  config: Config.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  upstream: Config.Upstream
): Effect.Effect<never, never, SocketService | ProcessService> =>
  Effect.gen(function*() {
    const processes = yield* ProcessService
    const clock = yield* Effect.clock
    const service = config.name
    const backoff = yield* Backoff.make(config.initialBackoff, config.maxBackoff)
    const tracker: Tracker = yield* makeTracker
    const relayer = Relay.make(clock)
    /** Connections waiting for the app, in arrival order. */
    const held: Array<Relay.Conn> = []
    /** Where connections go now; undefined while no app accepts (they are held). */
    let target: Relay.Target | undefined
    /** Activity soad itself caused (a start): the relayer reports the rest. */
    let started = 0
    const maxHeld = config.maxHeld ?? Relay.defaultMaxHeld(Relay.fdLimit())
    /** Stops accepting while `maxHeld` connections are held, accepts again below. */
    let full = false
    const updateHold = () => {
      if (full === held.length >= maxHeld) return
      full = !full
      relayer.hold(full)
      if (full) Queue.unsafeOffer(notices, { _tag: "Full" })
    }
    /** What the relayer reports from its callbacks, logged by one fiber in order. */
    const notices = yield* Queue.unbounded<Notice>()
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      const batch = yield* Queue.takeBetween(notices, 1, Number.MAX_SAFE_INTEGER)
      const stats = yield* relayer.stats
      yield* report(service, Chunk.toReadonlyArray(batch), { held: held.length, relayed: stats.open, maxHeld })
    })))
    const onFail = (failure: Relay.Failure) => Queue.unsafeOffer(notices, { _tag: "Failed", ...failure })
    /** A connection is held (false) or `soad wake` asked (true). */
    const arrived = yield* Queue.sliding<boolean>(2)
    yield* Effect.acquireRelease(
      Effect.sync(() => tracker.wake.subscribe(() => Queue.unsafeOffer(arrived, true))),
      (unsubscribe) => Effect.sync(unsubscribe)
    )
    const lastActivity = Effect.map(relayer.stats, (stats) => Math.max(started, stats.lastActivity ?? 0))
    yield* register(config, listeners, tracker, backoff, Effect.map(relayer.stats, (stats) => ({
      openConnections: stats.open + held.length,
      relayedBytes: { in: stats.bytesIn, out: stats.bytesOut }
    })))

    // soad accepts on its listeners itself.
    yield* relayer.listen(listeners.map((listener) => listener.fd), (conn) => {
      if (target !== undefined) return relayer.connect(conn, target, onFail)
      held.push(conn)
      updateHold()
      Queue.unsafeOffer(arrived, false)
    }, (pressure) => Queue.unsafeOffer(notices, pressure))
    yield* Effect.addFinalizer(() => Effect.sync(() => held.splice(0).forEach(relayer.close)))

    /** Held connections whose client is still there. */
    const waiting = () => {
      for (let i = held.length - 1; i >= 0; i--) if (relayer.gone(held[i]!)) held.splice(i, 1)
      updateHold()
      return held.length
    }

    const dropHeld = (why: string) =>
      Effect.suspend(() => {
        const dropped = held.splice(0)
        updateHold()
        dropped.forEach(relayer.close)
        return dropped.length === 0
          ? Effect.void
          : event("warn", "dropped", `closed ${dropped.length} waiting connection${dropped.length === 1 ? "" : "s"}: ${why}`, {
            connections: dropped.length
          })
      })

    const runApp = (wake: boolean, pendingSince: number) =>
      Effect.gen(function*() {
        const address: Relay.Target = upstream._tag === "Auto"
          ? { host: "127.0.0.1", port: yield* Effect.orDie(freePort) }
          : upstream._tag === "Unix"
          ? { path: upstream.path }
          : { host: upstream.host, port: upstream.port }
        const env: Record<string, string> = upstream._tag === "Auto" && "port" in address
          ? { PORT: String(address.port), SOAD_UPSTREAM: describe(address) }
          : { SOAD_UPSTREAM: describe(address) }
        const stop = yield* Deferred.make<string>()
        const done = yield* Deferred.make<void>()
        yield* Effect.addFinalizer(() =>
          Deferred.succeed(done, undefined).pipe(
            Effect.zipRight(Ref.set(tracker.run, Option.none())),
            Effect.zipRight(Ref.set(tracker.phase, { phase: "idle", pid: undefined, startedAt: undefined }))
          )
        )
        yield* Ref.set(tracker.run, Option.some({ stop, done, lastActivity }))
        const budget = yield* Effect.serviceOption(Budget)
        if (Option.isSome(budget)) {
          yield* budget.value.reserve(service, {
            lastActivity,
            evict: (reason) => Deferred.succeed(stop, reason).pipe(Effect.zipRight(Deferred.await(done)))
          })
        }
        // The app gets no socket in this mode: it binds its upstream address itself.
        const spawned = yield* Effect.either(
          processes.spawn({ ...spawnRequest(config, [], env), fds: [], fdNames: [] }, {
            signal: config.shutdownSignal,
            timeout: config.stopTimeout
          })
        )
        if (Either.isLeft(spawned)) {
          const state = yield* backoff.failed
          yield* count(tracker, "failedStarts")
          yield* Metric.increment(Metrics.forService(Metrics.failedStarts, service))
          yield* event("error", "start_failed", `cannot start the app: ${spawned.left.message}`, { code: spawned.left.code })
          yield* dropHeld("the app cannot start")
          return yield* logFailing(state, yield* now)
        }
        const app: App = spawned.right
        const startedAt = yield* now
        started = startedAt
        yield* Ref.set(tracker.phase, { phase: "starting", pid: app.pid, startedAt })
        yield* count(tracker, "activations")
        yield* Metric.increment(Metrics.forService(Metrics.activations, service))
        yield* event(
          "info",
          "started",
          `app started (pid ${app.pid}, ${
            wake ? "on request" : `${Format.millis((yield* preciseNow) - pendingSince)} after the connection`
          }; upstream ${describe(address)})`,
          { pid: app.pid, upstream: describe(address), trigger: wake ? "wake" : "connection" }
        )
        const run: Run = {
          config,
          tracker,
          backoff,
          app,
          startedAt,
          // new connections are held while the app stops; the relays left are closed once it has exited
          beforeStop: Effect.sync(() => (target = undefined)),
          afterStop: Effect.sync(() => relayer.closeRelayed()),
          afterFailure: dropHeld
        }
        const watch = Effect.gen(function*() {
          const up = yield* Effect.raceFirst(
            Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
            awaitListening(address).pipe(
              Effect.timeoutOption(config.startTimeout),
              Effect.map((ready) => (Option.isSome(ready) ? undefined : ({ _tag: "NotReady" } as Outcome)))
            )
          )
          if (up !== undefined) return up
          // Up: the held connections go first, in arrival order.
          yield* Ref.set(tracker.phase, { phase: "running", pid: app.pid, startedAt })
          const coldStart = (yield* preciseNow) - pendingSince
          if (!wake) yield* Metric.update(Metrics.forService(Metrics.coldStart, service), coldStart / 1000)
          yield* event("debug", "ready", `the app accepts on ${describe(address)} (${Format.millis(coldStart)})`, {
            pid: app.pid,
            cold_start_ms: Number(coldStart.toFixed(3))
          })
          started = yield* now
          for (const conn of held.splice(0)) relayer.connect(conn, address, onFail)
          target = address
          updateHold()
          return yield* Effect.raceFirst(
            Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
            Effect.gen(function*() {
              const idle = Duration.toMillis(config.idleTimeout)
              for (;;) {
                const t = yield* now
                const last = yield* lastActivity
                if (t >= last + idle) return { _tag: "Idle", idleFor: t - last } satisfies Outcome
                yield* Effect.sleep(Duration.millis(last + idle - t))
              }
            })
          )
        })
        const outcome = yield* Effect.raceFirst(
          watch,
          Effect.map(Deferred.await(stop), (reason): Outcome => ({ _tag: "Stopped", reason }))
        ).pipe(onShutdown(run))
        target = undefined
        yield* conclude(run, outcome, `did not listen on ${describe(address)}`)
      }).pipe(Effect.scoped)

    return yield* Effect.forever(Effect.gen(function*() {
      // A held connection (or `soad wake`) starts the app.
      const wake = yield* Queue.take(arrived)
      if (!wake && waiting() === 0) return // it went away while it waited
      const pendingSince = yield* preciseNow
      const { notBefore } = yield* backoff.state
      const t = yield* now
      if (!wake && notBefore > t) {
        yield* Effect.sleep(Duration.millis(notBefore - t))
        if (waiting() === 0) return
      }
      yield* runApp(wake, pendingSince)
      if (held.length > 0) yield* Queue.offer(arrived, false) // came while it stopped: start again
    }))
  }).pipe(Effect.scoped, Effect.annotateLogs("service", config.name))
