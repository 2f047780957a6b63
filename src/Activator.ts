/**
 * One service's lifecycle: wait for a connection, start the app with the listeners, watch its activity
 * against the Clock, stop it when idle, and again. Built only from SocketService, ProcessService and Clock,
 * so tests run it against fake layers under TestClock.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type * as Config from "./Config.js"
import { Budget } from "./Budget.js"
import * as AppListening from "./internal/appListening.js"
import * as Backoff from "./internal/backoff.js"
import * as Format from "./internal/format.js"
import * as Idle from "./internal/idle.js"
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
  type Tracker,
  unitOf
} from "./internal/lifecycle.js"
import { event } from "./Logging.js"
import * as Metrics from "./Metrics.js"
import type { App } from "./ProcessService.js"
import { ProcessService } from "./ProcessService.js"
import * as Proxy from "./Proxy.js"
import type { Arrivals, ListenError, Listener } from "./SocketService.js"
import { SocketService } from "./SocketService.js"

/** How often open connections are looked at once the idle time has passed with some still open. */
const openConnectionRecheckMillis = 1000

/**
 * Opens the service's listeners in the current scope, in order, and logs each; first kills what a killed soad
 * left running for this service (it may hold the sockets).
 */
export const listen = (
  config: Config.ServiceConfig
): Effect.Effect<ReadonlyArray<Listener>, ListenError, SocketService | ProcessService | Scope.Scope> =>
  Effect.gen(function*() {
    const sockets = yield* SocketService
    yield* (yield* ProcessService).reclaim(unitOf(config))
    const listeners: Array<Listener> = []
    for (const listenerConfig of config.listeners) {
      const listener = yield* sockets.open(listenerConfig, config.socket)
      listeners.push(listener)
      yield* event(
        "info",
        "listening",
        `listening on ${listener.description}` + (listener.name === "soad" ? "" : ` (${listener.name})`),
        { listener: listener.description, listener_name: listener.name }
      )
    }
    if (!config.idleIgnoresOpenConnections && !sockets.connectionAware) {
      yield* event(
        "warn",
        "fallback",
        "open connections cannot be seen on this platform: the app counts as idle after -t without new connections, " +
          "even while a connection it accepted is still open"
      )
    }
    if (!sockets.exactCounting) {
      yield* event(
        "warn",
        "fallback",
        "exact connection counting is not available on this platform: activity is seen through readability, " +
          "so a connection the app accepts at once may not reset the idle timer"
      )
    }
    return listeners as ReadonlyArray<Listener>
  })

/**
 * Waits until the app has been idle for `idleTimeout` (see internal/idle.ts): no connection arrived for that long,
 * none waits in the backlog, none it accepted is still open. Looks only at the deadlines the decisions ask for,
 * and reads what arrived meanwhile then (nothing runs per connection); returns how long the app was idle.
 */
const awaitIdle = (
  config: Config.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  arrivals: Arrivals,
  lastActivity: Ref.Ref<number>
) =>
  Effect.gen(function*() {
    const sockets = yield* SocketService
    const rule: Idle.Rule = { idleMillis: Duration.toMillis(config.idleTimeout), recheckMillis: openConnectionRecheckMillis }
    let waitingForClose = false
    const look = Effect.gen(function*() {
      const t = yield* now
      let last = yield* Ref.get(lastActivity)
      if (!Idle.beforeDeadline(rule, t, last)) {
        const seen = yield* arrivals.latest
        if (seen.rearmed) {
          yield* event(
            "warn",
            "counting_restored",
            "counting on a listener was disturbed (the app cleared O_ASYNC, or moved its owner or signal); " +
              "counting is restored, idle time starts again"
          )
          last = t
        } else if (seen.at !== undefined && seen.at > last) last = seen.at
      }
      const late = !Idle.beforeDeadline(rule, t, last)
      // Only at a deadline: is a connection waiting (activity, even if not seen arrive), or one still open?
      const pending = late && (yield* sockets.isPending(listeners))
      const open = late && !pending && !config.idleIgnoresOpenConnections ? yield* sockets.openConnections(listeners) : 0
      const decision = Idle.decide(rule, { now: t, lastActivity: last, pending, open })
      if (decision._tag === "Wait") {
        yield* Ref.set(lastActivity, decision.lastActivity)
        if (decision.open > 0 && !waitingForClose) {
          yield* event(
            "info",
            "open_connections",
            `no new connection for ${Format.seconds(t - last)}, but ${open} still open: the app stays until ${
              open === 1 ? "it closes" : "they close"
            }`,
            { open, idle_ms: t - last }
          )
        }
        waitingForClose = decision.open > 0
      }
      return decision
    })
    return yield* Idle.untilIdle(look)
  })

/** How the run was started: a connection pending on a listener, or `soad wake`. */
type Trigger = { readonly _tag: "Connection"; readonly listener: Listener } | { readonly _tag: "Wake" }

/** One run of the app: start it, watch it, stop it when idle (or asked to). */
const runApp = (
  config: Config.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  backoff: Backoff.Backoff,
  tracker: Tracker,
  trigger: Trigger,
  pendingSince: number
) =>
  Effect.gen(function*() {
    const sockets = yield* SocketService
    const processes = yield* ProcessService
    const service = config.name
    const request = spawnRequest(config, listeners)
    const because = trigger._tag === "Wake" ? "on request (soad wake)" : `on a connection to ${trigger.listener.description}`
    // Watch arrivals before the app starts, so connections during its start count too.
    const arrivals = yield* sockets.arrivals(listeners, config.user)
    const lastActivity = yield* Ref.make(yield* now)
    const latestActivity = Effect.zipWith(Ref.get(lastActivity), arrivals.latest, (last, seen) => Math.max(last, seen.at ?? last))
    // The budget or `soad sleep` may ask the app to stop; `done` completes once it has.
    const stop = yield* Deferred.make<string>()
    const done = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() =>
      Deferred.succeed(done, undefined).pipe(
        Effect.zipRight(Ref.set(tracker.run, Option.none())),
        Effect.zipRight(Ref.set(tracker.phase, { phase: "idle", pid: undefined, startedAt: undefined }))
      )
    )
    yield* Ref.set(tracker.run, Option.some({ stop, done, lastActivity: latestActivity }))
    const budget = yield* Effect.serviceOption(Budget)
    if (Option.isSome(budget)) {
      yield* budget.value.reserve(service, {
        lastActivity: latestActivity,
        evict: (reason) => Deferred.succeed(stop, reason).pipe(Effect.zipRight(Deferred.await(done)))
      })
    }
    yield* event("debug", "starting", `starting ${config.command.join(" ")} ${because}`)
    const spawned = yield* Effect.either(
      processes.spawn(request, { signal: config.shutdownSignal, timeout: config.stopTimeout })
    )
    if (Either.isLeft(spawned)) {
      const state = yield* backoff.failed
      yield* count(tracker, "failedStarts")
      yield* Metric.increment(Metrics.forService(Metrics.failedStarts, service))
      yield* event("error", "start_failed", `cannot start the app: ${spawned.left.message}`, { code: spawned.left.code })
      yield* logFailing(state, yield* now)
      return
    }
    const app: App = spawned.right
    const startedAt = yield* now
    yield* Ref.set(tracker.phase, { phase: "starting", pid: app.pid, startedAt })
    yield* count(tracker, "activations")
    yield* Metric.increment(Metrics.forService(Metrics.activations, service))
    const spawnMs = (yield* preciseNow) - pendingSince
    yield* event(
      "info",
      "started",
      trigger._tag === "Wake"
        ? `app started (pid ${app.pid}, on request)`
        : `app started (pid ${app.pid}, ${Format.millis(spawnMs)} after the connection on ${trigger.listener.description})`,
      { pid: app.pid, spawn_ms: Number(spawnMs.toFixed(3)), trigger: trigger._tag === "Wake" ? "wake" : "connection" }
    )
    yield* Ref.set(lastActivity, startedAt)
    const run: Run = { config, tracker, backoff, app, startedAt }
    const watch = Effect.gen(function*() {
      // Readiness: the app must take the waiting connection within the start timeout.
      const start = yield* Effect.raceFirst(
        Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
        sockets.awaitAccepting(listeners).pipe(
          Effect.timeoutOption(config.startTimeout),
          Effect.map((ready): Outcome | undefined => Option.isSome(ready) ? undefined : { _tag: "NotReady" })
        )
      )
      if (start !== undefined) return start
      yield* Ref.set(tracker.phase, { phase: "running", pid: app.pid, startedAt })
      const coldStart = (yield* preciseNow) - pendingSince
      if (trigger._tag === "Connection") {
        yield* Metric.update(Metrics.forService(Metrics.coldStart, service), coldStart / 1000)
      }
      yield* event("debug", "ready", `the app accepts connections (${Format.millis(coldStart)} after ${because})`, {
        pid: app.pid,
        cold_start_ms: Number(coldStart.toFixed(3))
      })
      return yield* Effect.raceFirst(
        Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
        Effect.map(awaitIdle(config, listeners, arrivals, lastActivity), (idleFor): Outcome => ({ _tag: "Idle", idleFor }))
      )
    })
    const outcome = yield* Effect.raceFirst(
      watch,
      Effect.map(Deferred.await(stop), (reason): Outcome => ({ _tag: "Stopped", reason }))
    ).pipe(onShutdown(run))
    // A failed start: look, before the app is stopped, whether it listens on an address of its own.
    const failedStart = (outcome._tag === "NotReady" || outcome._tag === "Exited") &&
      (yield* Ref.get(tracker.phase)).phase === "starting"
    const own = failedStart ? yield* sockets.ownListening(app.pid, listeners) : []
    yield* conclude(run, outcome, "did not accept a connection")
    if (own.length > 0) {
      const { listensOn, message, upstream } = AppListening.hint(own, listeners.length)
      yield* event("warn", "hint", message, { pid: app.pid, listens_on: listensOn, upstream })
    }
  }).pipe(Effect.scoped)

/**
 * Serves the service on listeners already open: waits for a connection (or a `wake`), runs the app, forever.
 * Registers with the Registry if there is one. Interrupting it stops a running app gracefully first.
 */
export const serve = (
  config: Config.ServiceConfig,
  listeners: ReadonlyArray<Listener>
): Effect.Effect<never, never, SocketService | ProcessService> =>
  // Not an Effect.fn: a span with its captured stack would stay with each service's fiber (7 KB each).
  config.upstream !== undefined ? Proxy.serve(config, listeners, config.upstream) : Effect.gen(function*() {
    const sockets = yield* SocketService
    const backoff = yield* Backoff.make(config.initialBackoff, config.maxBackoff)
    const tracker = yield* makeTracker
    yield* register(config, listeners, tracker, backoff)
    return yield* Effect.forever(Effect.gen(function*() {
      const ready = yield* sockets.awaitReadable(listeners, tracker.wake)
      const trigger: Trigger = ready === undefined ? { _tag: "Wake" } : { _tag: "Connection", listener: ready }
      let pendingSince = yield* preciseNow
      const { failures, notBefore } = yield* backoff.state
      const t = yield* now
      // A wake by hand does not wait for the backoff.
      if (trigger._tag === "Connection" && notBefore > t) {
        yield* event(
          "debug",
          "waiting",
          `a connection waits on ${trigger.listener.description}; next try in ${Format.seconds(notBefore - t)} (${failures} failure${
            failures === 1 ? "" : "s"
          } in a row)`
        )
        yield* Effect.sleep(Duration.millis(notBefore - t))
        // The connection may have given up meanwhile: start only for one still waiting.
        if (!(yield* sockets.isPending(listeners))) return
        pendingSince = yield* preciseNow
      }
      yield* runApp(config, listeners, backoff, tracker, trigger, pendingSince)
    }))
  }).pipe(Effect.scoped, Effect.annotateLogs("service", config.name))

/**
 * Runs one service until interrupted: opens its listeners, serves, and on interruption stops the app and
 * closes the listeners (removing the socket files soad created).
 */
export const run = (
  config: Config.ServiceConfig
): Effect.Effect<never, ListenError, SocketService | ProcessService> =>
  Effect.scoped(Effect.flatMap(listen(config), (listeners) => serve(config, listeners))).pipe(
    Effect.annotateLogs("service", config.name)
  )

/**
 * Starts one service in the current scope: returns once its listeners are open, with the serving fiber;
 * closing the scope stops the app and closes the listeners.
 */
export const start = (
  config: Config.ServiceConfig
): Effect.Effect<Fiber.RuntimeFiber<never>, ListenError, SocketService | ProcessService | Scope.Scope> =>
  Effect.flatMap(
    listen(config).pipe(Effect.annotateLogs("service", config.name)),
    (listeners) => Effect.forkScoped(serve(config, listeners))
  )
