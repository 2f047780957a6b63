/**
 * One service's lifecycle: wait for a connection, start the app with the listeners, watch its activity
 * against the Clock, stop it when idle, and again. Built only from SocketService, ProcessService and Clock,
 * so tests run it against fake layers under TestClock.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Config from "./Config.js"
import { Budget } from "./Budget.js"
import * as Backoff from "./internal/backoff.js"
import * as Format from "./internal/format.js"
import type { App, ExitStatus, SpawnRequest } from "./ProcessService.js"
import { ProcessService } from "./ProcessService.js"
import type { Arrivals, ListenError, Listener } from "./SocketService.js"
import { SocketService } from "./SocketService.js"

/** Clock time in whole milliseconds (from the monotonic nanosecond clock), so deadlines compare exactly. */
const now = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos / 1_000_000n))

/** Clock time in fractional milliseconds, for measuring short intervals. */
const preciseNow = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos) / 1e6)

/** How a run of the app ended. */
type Outcome =
  | { readonly _tag: "Exited"; readonly status: ExitStatus }
  | { readonly _tag: "Idle"; readonly idleFor: number }
  | { readonly _tag: "NotReady" }
  | { readonly _tag: "Evicted"; readonly reason: string }

/** How often readiness is looked at while the app starts. */
const readinessInterval = Duration.millis(20)

/** How often open connections are looked at once the idle time has passed with some still open. */
const openConnectionRecheck = Duration.seconds(1)

/**
 * Completes once the app accepts: nothing waits in the backlog any more, or a connection it accepted is open.
 * Looked at every 20 ms, only while the app starts.
 */
const awaitAccepting = (listeners: ReadonlyArray<Listener>) =>
  Effect.flatMap(SocketService, (sockets) =>
    Effect.repeat(
      Effect.zipWith(
        sockets.isPending(listeners),
        sockets.openConnections(listeners),
        (pending, open) => !pending || open > 0
      ),
      { schedule: Schedule.spaced(readinessInterval), until: (ready) => ready }
    ))

/**
 * Opens the service's listeners in the current scope, in order, and logs each.
 */
export const listen = Effect.fn("Activator.listen")(function*(config: Config.ServiceConfig) {
  const sockets = yield* SocketService
  const listeners: Array<Listener> = []
  for (const listenerConfig of config.listeners) {
    const listener = yield* sockets.open(listenerConfig, config.socket)
    listeners.push(listener)
    yield* Effect.logInfo(`listening on ${listener.description}` + (listener.name === "soad" ? "" : ` (${listener.name})`))
  }
  if (!config.idleIgnoresOpenConnections && !sockets.connectionAware) {
    yield* Effect.logWarning(
      "open connections cannot be seen on this platform: the app counts as idle after -t without new connections, " +
        "even while a connection it accepted is still open"
    )
  }
  if (!sockets.exactCounting) {
    yield* Effect.logWarning(
      "exact connection counting is not available on this platform: activity is seen through readability, " +
        "so a connection the app accepts at once may not reset the idle timer"
    )
  }
  return listeners as ReadonlyArray<Listener>
})

/**
 * Waits until the app has been idle for `idleTimeout`: no connection arrived for that long and none waits in
 * the backlog. Sleeps until the deadline, then reads what arrived meanwhile (nothing runs per connection);
 * returns how long the app was idle.
 */
const awaitIdle = (
  config: Config.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  arrivals: Arrivals,
  lastActivity: Ref.Ref<number>
) =>
  Effect.gen(function*() {
    const sockets = yield* SocketService
    const idleMillis = Duration.toMillis(config.idleTimeout)
    let waitingForClose = false
    for (;;) {
      const t = yield* now
      const last = yield* Ref.get(lastActivity)
      const deadline = last + idleMillis
      if (t < deadline) {
        yield* Effect.sleep(Duration.millis(deadline - t))
        continue
      }
      const seen = yield* arrivals.latest
      if (seen.rearmed) {
        yield* Effect.logWarning("the app cleared O_ASYNC on a listener; counting is restored, idle time starts again")
        yield* Ref.set(lastActivity, t)
        continue
      }
      if (seen.at !== undefined && seen.at > last) {
        yield* Ref.set(lastActivity, seen.at)
        continue
      }
      // A connection waiting to be accepted is activity, even if it was not seen yet.
      if (yield* sockets.isPending(listeners)) {
        yield* Ref.set(lastActivity, t)
        continue
      }
      // An accepted connection still open (a long request, a WebSocket) keeps the app; look again shortly.
      if (!config.idleIgnoresOpenConnections) {
        const open = yield* sockets.openConnections(listeners)
        if (open > 0) {
          if (!waitingForClose) {
            yield* Effect.logInfo(
              `no new connection for ${Format.seconds(t - last)}, but ${open} still open: the app stays until ${
                open === 1 ? "it closes" : "they close"
              }`
            )
          }
          waitingForClose = true
          yield* Effect.sleep(Duration.min(config.idleTimeout, openConnectionRecheck))
          continue
        }
      }
      return t - last
    }
  })

/** One run of the app: start it, watch it, stop it when idle. */
const runApp = (
  config: Config.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  backoff: Backoff.Backoff,
  trigger: Listener,
  pendingSince: number
) =>
  Effect.gen(function*() {
    const sockets = yield* SocketService
    const processes = yield* ProcessService
    const request: SpawnRequest = {
      command: config.command,
      env: config.env,
      inheritEnv: config.inheritEnv,
      cwd: config.cwd,
      fds: listeners.map((listener) => listener.fd),
      fdNames: listeners.map((listener) => listener.name),
      uid: config.user?.uid,
      gid: config.user?.gid,
      groups: config.user?.groups
    }
    // Watch arrivals before the app starts, so connections during its start count too.
    const arrivals = yield* sockets.arrivals(listeners)
    const lastActivity = yield* Ref.make(yield* now)
    // The budget may ask for the app to be stopped to make room for another; `evicted` completes once it has.
    const evictRequest = yield* Deferred.make<string>()
    const evicted = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() => Deferred.succeed(evicted, undefined))
    const budget = yield* Effect.serviceOption(Budget)
    if (Option.isSome(budget)) {
      yield* budget.value.reserve(config.name, {
        lastActivity: Effect.zipWith(Ref.get(lastActivity), arrivals.latest, (last, seen) => Math.max(last, seen.at ?? last)),
        evict: (reason) => Deferred.succeed(evictRequest, reason).pipe(Effect.zipRight(Deferred.await(evicted)))
      })
    }
    yield* Effect.logDebug(`connection pending on ${trigger.description}: starting ${config.command.join(" ")}`)
    const spawned = yield* Effect.either(
      processes.spawn(request, { signal: config.shutdownSignal, timeout: config.stopTimeout })
    )
    if (Either.isLeft(spawned)) {
      const state = yield* backoff.failed
      yield* Effect.logError(`cannot start the app: ${spawned.left.message}`)
      yield* logFailing(state, yield* now)
      return
    }
    const app: App = spawned.right
    const startedAt = yield* now
    yield* Effect.logInfo(
      `app started (pid ${app.pid}, ${Format.millis((yield* preciseNow) - pendingSince)} after the connection on ${trigger.description})`
    )
    yield* Ref.set(lastActivity, startedAt)
    const watch = Effect.gen(function*() {
      // Readiness: the app must take the waiting connection within the start timeout.
      const start = yield* Effect.raceFirst(
        Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
        awaitAccepting(listeners).pipe(
          Effect.timeoutOption(config.startTimeout),
          Effect.map((ready): Outcome | undefined => Option.isSome(ready) ? undefined : { _tag: "NotReady" })
        )
      )
      if (start !== undefined) return start
      yield* Effect.logDebug(
        `the app is accepting connections (${Format.millis((yield* preciseNow) - pendingSince)} after the connection)`
      )
      return yield* Effect.raceFirst(
        Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status })),
        Effect.map(awaitIdle(config, listeners, arrivals, lastActivity), (idleFor): Outcome => ({ _tag: "Idle", idleFor }))
      )
    })
    const outcome = yield* Effect.raceFirst(
      watch,
      Effect.map(Deferred.await(evictRequest), (reason): Outcome => ({ _tag: "Evicted", reason }))
    ).pipe(
      Effect.onInterrupt(() =>
        Effect.logInfo(`soad is shutting down: stopping the app (pid ${app.pid}) with ${config.shutdownSignal.name}`).pipe(
          Effect.zipRight(app.stop),
          Effect.flatMap((status) =>
            Effect.flatMap(now, (t) =>
              Effect.logInfo(`app exited (${Format.exit(status)}, uptime ${Format.seconds(t - startedAt)})`)
            )
          )
        )
      )
    )
    switch (outcome._tag) {
      case "NotReady": {
        yield* Effect.logWarning(
          `the app (pid ${app.pid}) did not accept a connection within ${
            Format.seconds(Duration.toMillis(config.startTimeout))
          }: stopping it`
        )
        const status = yield* app.stop
        const state = yield* backoff.failed
        yield* Effect.logWarning(`app exited (${Format.exit(status)}, uptime ${Format.seconds((yield* now) - startedAt)})`)
        return yield* logFailing(state, yield* now)
      }
      case "Evicted": {
        yield* Effect.logInfo(`stopping the app (pid ${app.pid}) ${outcome.reason}`)
        const status = yield* app.stop
        const exitedAt = yield* now
        yield* Effect.logInfo(`app exited (${Format.exit(status)}, uptime ${Format.seconds(exitedAt - startedAt)})`)
        return yield* backoff.reset
      }
      case "Idle": {
        yield* Effect.logInfo(
          `stopping the app (pid ${app.pid}, idle for ${Format.seconds(outcome.idleFor)}) with ${config.shutdownSignal.name}`
        )
        const status = yield* app.stop
        const exitedAt = yield* now
        yield* Effect.logInfo(`app exited (${Format.exit(status)}, uptime ${Format.seconds(exitedAt - startedAt)})`)
        return yield* backoff.reset
      }
      case "Exited": {
        const exitedAt = yield* now
        const uptime = exitedAt - startedAt
        const message = `app exited by itself (${Format.exit(outcome.status)}, uptime ${Format.seconds(uptime)})`
        if (uptime < Duration.toMillis(config.minUptime)) {
          const state = yield* backoff.failed
          yield* Effect.logWarning(message)
          return yield* logFailing(state, exitedAt)
        }
        yield* backoff.reset
        return yield* outcome.status.code === 0 ? Effect.logInfo(message) : Effect.logWarning(message)
      }
    }
  }).pipe(Effect.scoped)

const logFailing = (state: Backoff.BackoffState, at: number) =>
  Effect.logWarning(
    `failing: next try in ${Format.seconds(Math.max(0, state.notBefore - at))}, ` +
      `${state.failures} failure${state.failures === 1 ? "" : "s"} in a row`
  )

/**
 * Serves the service on listeners already open: waits for a connection, runs the app, forever.
 * Interrupting it stops a running app gracefully first.
 */
export const serve = (
  config: Config.ServiceConfig,
  listeners: ReadonlyArray<Listener>
): Effect.Effect<never, never, SocketService | ProcessService> =>
  // Not an Effect.fn: a span with its captured stack would stay with each service's fiber (7 KB each).
  Effect.gen(function*() {
    const sockets = yield* SocketService
    const backoff = yield* Backoff.make(config.initialBackoff, config.maxBackoff)
    return yield* Effect.forever(Effect.gen(function*() {
      const trigger = yield* sockets.awaitReadable(listeners)
      let pendingSince = yield* preciseNow
      const { failures, notBefore } = yield* backoff.state
      const t = yield* now
      if (notBefore > t) {
        yield* Effect.logDebug(
          `a connection waits on ${trigger.description}; next try in ${Format.seconds(notBefore - t)} (${failures} failure${
            failures === 1 ? "" : "s"
          } in a row)`
        )
        yield* Effect.sleep(Duration.millis(notBefore - t))
        // The connection may have given up meanwhile: start only for one still waiting.
        if (!(yield* sockets.isPending(listeners))) return
        pendingSince = yield* preciseNow
      }
      yield* runApp(config, listeners, backoff, trigger, pendingSince)
    }))
  }).pipe(Effect.annotateLogs("service", config.name))

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
