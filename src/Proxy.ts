/**
 * Proxy mode, for apps that know nothing of socket activation and bind their own port: soad accepts each
 * connection itself, starts the app, waits until its upstream address accepts, and relays bytes both ways.
 * Connections that arrive while the app starts are held and relayed in arrival order once it is up. Activity is
 * exact: a connection opened or a byte relayed either way; an open connection with no bytes for -t does not keep
 * the app running.
 *
 * @since 0.1.0
 */
import type * as Clock from "effect/Clock"
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
import * as Format from "./internal/format.js"
import { count, logFailing, makeTracker, now, preciseNow, register, spawnRequest, type Tracker } from "./internal/lifecycle.js"
import { native } from "./internal/native.js"
import { event } from "./Logging.js"
import * as Metrics from "./Metrics.js"
import type { App, ExitStatus } from "./ProcessService.js"
import { ProcessService } from "./ProcessService.js"
import type { Listener, SocketService } from "./SocketService.js"

/** Where to connect to the app. */
type Target = { readonly host: string; readonly port: number } | { readonly path: string }

const describe = (target: Target) => "path" in target ? target.path : Address.format({ _tag: "Tcp", ...target })

/** A free TCP port on 127.0.0.1 (for `--upstream auto`). */
const freePort = Effect.async<number, Error>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.fail(error)))
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** One connection to the upstream, once it accepts. */
const connect = (target: Target) =>
  Effect.async<Net.Socket, Error>((resume) => {
    const socket = Net.connect({ ...target, allowHalfOpen: true })
    const onError = (error: Error) => resume(Effect.fail(error))
    socket.once("error", onError)
    socket.once("connect", () => {
      socket.off("error", onError)
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.destroy())
  })

/** Retries to reach the upstream while the app starts: from 10 ms, growing, at most 250 ms apart. */
const upstreamRetry = Schedule.exponential("10 millis", 1.5).pipe(Schedule.union(Schedule.spaced("250 millis")))

/** The live state of a proxied service, touched by socket callbacks (which run no Effect). */
interface Relays {
  /** Connections waiting for the app, in arrival order. */
  readonly held: Array<Net.Socket>
  /** Where connections go now; undefined while no app accepts (they are held). */
  target: Target | undefined
  readonly open: Set<{ readonly client: Net.Socket; readonly upstream: Net.Socket }>
  lastActivity: number
  bytesIn: number
  bytesOut: number
}

/** Relays `client` to `upstream` both ways: half-close, backpressure (pipe), an error on one side ends both. */
const relay = (relays: Relays, clock: Clock.Clock, client: Net.Socket, upstream: Net.Socket) => {
  const pair = { client, upstream }
  relays.open.add(pair)
  const end = () => {
    relays.open.delete(pair)
    client.destroy()
    upstream.destroy()
  }
  client.on("error", end)
  upstream.on("error", end)
  client.on("close", end)
  upstream.on("close", end)
  client.on("data", (chunk: Buffer) => {
    relays.lastActivity = clock.unsafeCurrentTimeMillis()
    relays.bytesIn += chunk.length
  })
  upstream.on("data", (chunk: Buffer) => {
    relays.lastActivity = clock.unsafeCurrentTimeMillis()
    relays.bytesOut += chunk.length
  })
  client.pipe(upstream)
  upstream.pipe(client)
}

/** How a run of the app ended. */
type Outcome =
  | { readonly _tag: "Exited"; readonly status: ExitStatus }
  | { readonly _tag: "Idle"; readonly idleFor: number }
  | { readonly _tag: "NotReady" }
  | { readonly _tag: "Stopped"; readonly reason: string }

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
    const n = native()
    const service = config.name
    const backoff = yield* Backoff.make(config.initialBackoff, config.maxBackoff)
    const tracker: Tracker = yield* makeTracker
    const relays: Relays = { held: [], target: undefined, open: new Set(), lastActivity: 0, bytesIn: 0, bytesOut: 0 }
    const arrived = yield* Queue.sliding<void>(1)
    yield* register(config, listeners, tracker, backoff, Effect.sync(() => ({
      openConnections: relays.open.size + relays.held.length,
      relayedBytes: { in: relays.bytesIn, out: relays.bytesOut }
    })))

    // soad accepts on its listeners itself (on copies of the fds, which Node owns and closes).
    const onConnection = (client: Net.Socket) => {
      client.on("error", () => client.destroy())
      relays.lastActivity = clock.unsafeCurrentTimeMillis()
      if (relays.target !== undefined) {
        const upstreamSocket = Net.connect({ ...relays.target, allowHalfOpen: true })
        relay(relays, clock, client, upstreamSocket)
        return
      }
      relays.held.push(client)
      client.once("close", () => {
        const i = relays.held.indexOf(client)
        if (i >= 0) relays.held.splice(i, 1)
      })
      Queue.unsafeOffer(arrived, undefined)
    }
    for (const listener of listeners) {
      const server = Net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, onConnection)
      const fd = n.dup(listener.fd)
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          server.listen({ fd }, () => resume(Effect.void))
        }),
        () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const client of relays.held.splice(0)) client.destroy()
        for (const pair of relays.open) {
          pair.client.destroy()
          pair.upstream.destroy()
        }
      })
    )

    const dropHeld = (why: string) =>
      Effect.suspend(() => {
        const dropped = relays.held.splice(0)
        for (const client of dropped) client.destroy()
        return dropped.length === 0
          ? Effect.void
          : event("warn", "dropped", `closed ${dropped.length} waiting connection${dropped.length === 1 ? "" : "s"}: ${why}`, {
            connections: dropped.length
          })
      })

    const runApp = (wake: boolean, pendingSince: number) =>
      Effect.gen(function*() {
        const target: Target = upstream._tag === "Auto"
          ? { host: "127.0.0.1", port: yield* Effect.orDie(freePort) }
          : upstream._tag === "Unix"
          ? { path: upstream.path }
          : { host: upstream.host, port: upstream.port }
        const env: Record<string, string> = upstream._tag === "Auto" && "port" in target
          ? { PORT: String(target.port), SOAD_UPSTREAM: describe(target) }
          : { SOAD_UPSTREAM: describe(target) }
        const stop = yield* Deferred.make<string>()
        const done = yield* Deferred.make<void>()
        yield* Effect.addFinalizer(() =>
          Deferred.succeed(done, undefined).pipe(
            Effect.zipRight(Ref.set(tracker.run, Option.none())),
            Effect.zipRight(Ref.set(tracker.phase, { phase: "idle", pid: undefined, startedAt: undefined }))
          )
        )
        const lastActivity = Effect.sync(() => relays.lastActivity)
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
        yield* Ref.set(tracker.phase, { phase: "starting", pid: app.pid, startedAt })
        yield* count(tracker, "activations")
        yield* Metric.increment(Metrics.forService(Metrics.activations, service))
        yield* event(
          "info",
          "started",
          `app started (pid ${app.pid}, ${wake ? "on request" : `${Format.millis((yield* preciseNow) - pendingSince)} after the connection`}; upstream ${describe(target)})`,
          { pid: app.pid, upstream: describe(target), trigger: wake ? "wake" : "connection" }
        )
        const exited = (status: ExitStatus, byItself: boolean, level: "info" | "warn" = "info") =>
          Effect.flatMap(now, (t) =>
            event(
              level,
              "exited",
              `app exited${byItself ? " by itself" : ""} (${Format.exit(status)}, uptime ${Format.seconds(t - startedAt)})`,
              { pid: app.pid, code: status.code, signal: status.signal, uptime_ms: t - startedAt, by_itself: byItself }
            ))
        /** Stops the app; new connections are held meanwhile, and the relays left are closed once it has exited. */
        const stopping = (reason: string, message: string, fields: Record<string, number> = {}) =>
          Effect.gen(function*() {
            relays.target = undefined
            yield* Ref.set(tracker.phase, { phase: "stopping", pid: app.pid, startedAt })
            yield* event("info", "stopping", message, { pid: app.pid, reason, ...fields })
            const status = yield* app.stop
            for (const pair of relays.open) {
              pair.client.destroy()
              pair.upstream.destroy()
            }
            return status
          })
        const watch = Effect.gen(function*() {
          const reached = yield* Effect.raceFirst(
            Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
            connect(target).pipe(
              Effect.retry(upstreamRetry),
              Effect.orDie, // the schedule never ends: only the start timeout stops the retries
              Effect.timeoutOption(config.startTimeout),
              Effect.map((socket) => Option.isSome(socket) ? socket.value : ({ _tag: "NotReady" } as Outcome))
            )
          )
          if (!(reached instanceof Net.Socket)) return reached
          // Up: the held connections go first, in arrival order (the probe connection serves the first).
          yield* Ref.set(tracker.phase, { phase: "running", pid: app.pid, startedAt })
          const coldStart = (yield* preciseNow) - pendingSince
          if (!wake) yield* Metric.update(Metrics.forService(Metrics.coldStart, service), coldStart / 1000)
          yield* event("debug", "ready", `the upstream ${describe(target)} accepts (${Format.millis(coldStart)})`, {
            pid: app.pid,
            cold_start_ms: Number(coldStart.toFixed(3))
          })
          relays.lastActivity = yield* now
          const held = relays.held.splice(0)
          if (held.length === 0) reached.destroy()
          held.forEach((client, i) =>
            relay(relays, clock, client, i === 0 ? reached : Net.connect({ ...target, allowHalfOpen: true }))
          )
          relays.target = target
          return yield* Effect.raceFirst(
            Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
            Effect.gen(function*() {
              const idle = Duration.toMillis(config.idleTimeout)
              for (;;) {
                const t = yield* now
                const deadline = relays.lastActivity + idle
                if (t >= deadline) return { _tag: "Idle", idleFor: t - relays.lastActivity } satisfies Outcome
                yield* Effect.sleep(Duration.millis(deadline - t))
              }
            })
          )
        })
        const outcome = yield* Effect.raceFirst(
          watch,
          Effect.map(Deferred.await(stop), (reason): Outcome => ({ _tag: "Stopped", reason }))
        ).pipe(
          Effect.onInterrupt(() =>
            stopping("shutdown", `soad is shutting down: stopping the app (pid ${app.pid}) with ${config.shutdownSignal.name}`)
              .pipe(Effect.flatMap((status) => exited(status, false)))
          )
        )
        relays.target = undefined
        switch (outcome._tag) {
          case "NotReady": {
            yield* event(
              "warn",
              "not_ready",
              `the app (pid ${app.pid}) did not accept on ${describe(target)} within ${
                Format.seconds(Duration.toMillis(config.startTimeout))
              }: stopping it`,
              { pid: app.pid, start_timeout_ms: Duration.toMillis(config.startTimeout) }
            )
            const status = yield* stopping("not_ready", `stopping the app (pid ${app.pid})`)
            const state = yield* backoff.failed
            yield* count(tracker, "failedStarts")
            yield* Metric.increment(Metrics.forService(Metrics.failedStarts, service))
            yield* exited(status, false, "warn")
            yield* dropHeld("the app did not come up")
            return yield* logFailing(state, yield* now)
          }
          case "Stopped": {
            yield* exited(yield* stopping("requested", `stopping the app (pid ${app.pid}) ${outcome.reason}`), false)
            return yield* backoff.reset
          }
          case "Idle": {
            const status = yield* stopping(
              "idle",
              `stopping the app (pid ${app.pid}, idle for ${Format.seconds(outcome.idleFor)}) with ${config.shutdownSignal.name}`,
              { idle_ms: outcome.idleFor }
            )
            yield* count(tracker, "idleStops")
            yield* Metric.increment(Metrics.forService(Metrics.idleStops, service))
            yield* exited(status, false)
            return yield* backoff.reset
          }
          case "Exited": {
            for (const pair of relays.open) {
              pair.client.destroy()
              pair.upstream.destroy()
            }
            const uptime = (yield* now) - startedAt
            if (uptime < Duration.toMillis(config.minUptime)) {
              const state = yield* backoff.failed
              yield* count(tracker, "crashes")
              yield* Metric.increment(Metrics.forService(Metrics.crashes, service))
              yield* exited(outcome.status, true, "warn")
              yield* dropHeld("the app exited before it came up")
              return yield* logFailing(state, yield* now)
            }
            yield* backoff.reset
            return yield* exited(outcome.status, true, outcome.status.code === 0 ? "info" : "warn")
          }
        }
      }).pipe(Effect.scoped)

    return yield* Effect.forever(Effect.gen(function*() {
      // A held connection (or `soad wake`) starts the app.
      const wake = yield* Effect.raceFirst(
        Effect.as(Queue.take(arrived), false),
        Effect.as(Queue.take(tracker.wake), true)
      )
      if (!wake && relays.held.length === 0) return // it went away while it waited
      const pendingSince = yield* preciseNow
      const { notBefore } = yield* backoff.state
      const t = yield* now
      if (!wake && notBefore > t) {
        yield* Effect.sleep(Duration.millis(notBefore - t))
        if (relays.held.length === 0) return
      }
      yield* runApp(wake, pendingSince)
      if (relays.held.length > 0) yield* Queue.offer(arrived, undefined) // came while it stopped: start again
    }))
  }).pipe(Effect.scoped, Effect.annotateLogs("service", config.name))
