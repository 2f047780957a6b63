/**
 * One service's lifecycle: wait for a connection, start the app with the listeners, watch its activity
 * against the Clock, stop it when idle, and again. Socket hand-off is a mode of the lifecycle core
 * (core/run.ts), as proxy mode (modes/proxy.ts) is; built only from SocketService, ProcessService, RelayService and
 * Clock, so tests run it against fake layers under TestClock.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type * as ServiceConfig from "./ServiceConfig.js"
import * as Accept from "./modes/accept.js"
import { Budget } from "./Budget.js"
import * as AppListening from "./os/appListening.js"
import * as Format from "./observe/format.js"
import * as Idle from "./core/idle.js"
import * as ListenerHealth from "./modes/listenerHealth.js"
import { now, spawnRequest, stopPolicy, unitOf } from "./core/lifecycle.js"
import * as Run from "./core/run.js"
import { event } from "./Logging.js"
import { ProcessService } from "./ProcessService.js"
import * as Proxy from "./modes/proxy.js"
import type { RelayService } from "./RelayService.js"
import type { Arrivals, ListenError, Listener } from "./SocketService.js"
import { SocketService } from "./SocketService.js"

/** How often open connections are looked at once the idle time has passed with some still open. */
const openConnectionRecheckMillis = 1000

/**
 * Opens the service's listeners in the current scope, in order, and logs each; first kills what a killed soad
 * left running for this service (it may hold the sockets).
 */
export const listen = (
  config: ServiceConfig.ServiceConfig
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
    // Accept mode: each instance ends with its connection; there is no activity to watch.
    if (config.accept) return listeners as ReadonlyArray<Listener>
    if (!config.idleIgnoresOpenConnections && !sockets.connectionAware) {
      yield* event(
        "warn",
        "fallback",
        "open connections cannot be seen on this platform: the app counts as idle after -t without new connections, " +
          "even while a connection it accepted is still open",
        { missing: "open_connections" }
      )
    }
    if (!sockets.exactCounting) {
      yield* event(
        "warn",
        "fallback",
        "exact connection counting is not available on this platform: activity is seen through readability, " +
          "so a connection the app accepts at once may not reset the idle timer",
        { missing: "exact_counting" }
      )
    }
    return listeners as ReadonlyArray<Listener>
  })

/**
 * One look at a hand-off app's activity (see core/idle.ts): no connection arrived for `idleTimeout`, none
 * waits in the backlog, none it accepted is still open. Reads what arrived only at the deadlines the decisions ask
 * for (nothing runs per connection); `lastActivity` is moved to the activity seen.
 */
const lookAtActivity = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  sockets: SocketService["Type"],
  arrivals: Arrivals,
  lastActivity: Ref.Ref<number>
): Effect.Effect<Idle.Decision> => {
  const rule: Idle.Rule = { idleMillis: Duration.toMillis(config.idleTimeout), recheckMillis: openConnectionRecheckMillis }
  let waitingForClose = false
  return Effect.gen(function*() {
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
}

/**
 * The cold path, where the platform has it: the listeners armed with the app's start, which the first connection
 * fires natively (no JS between the wake and the fork). Used when nothing has to be decided at the connection:
 * no backoff pending, no RAM budget to make room in, readiness by accepting (`--ready notify` needs a notify socket
 * of the run's own). None: wait for the connection, then start (the same run either way). Some(undefined): a
 * listener woke it only because it no longer listens (nothing started; the next turn brings it back).
 */
const coldStart = (service: Run.Service, processes: ProcessService["Type"]) => {
  const { config, listeners, tracker } = service
  const spawnOnPending = processes.spawnOnPending
  if (spawnOnPending === undefined || config.ready === "notify") return undefined
  const request = spawnRequest(config, listeners)
  const policy = stopPolicy(config)
  return Effect.gen(function*() {
    const budget = yield* Effect.serviceOption(Budget)
    const { notBefore } = yield* service.backoff.state
    if (Option.isSome(budget) || notBefore > (yield* now)) return Option.none()
    const pending = yield* Effect.either(spawnOnPending(request, policy, tracker.wake))
    if (Either.isLeft(pending)) return Option.some<Run.Trigger | undefined>({ _tag: "Connection", started: Either.left(pending.left) })
    const outcome = pending.right
    switch (outcome._tag) {
      case "NotArmed":
        yield* event("debug", "not_armed", `cannot arm the listeners (${outcome.reason.message}): the app starts after the connection`, {
          code: outcome.reason.code
        })
        return Option.none()
      case "NotListening":
        return Option.some(undefined)
      case "Woken":
        return Option.some<Run.Trigger | undefined>({ _tag: "Wake" })
      case "Started":
        return Option.some<Run.Trigger | undefined>({ _tag: "Connection", listener: listeners[outcome.index], started: Either.right(outcome) })
    }
  })
}

/**
 * Socket hand-off: a connection pending on a listener (or `soad wake`) starts the app with the listeners as fds
 * 3, 4, …; it is ready once it accepts; activity is every connection that arrives (counted), one waiting, or one
 * it accepted still open. The app shares the listeners and may shut them down: before each wait they are looked at
 * and brought back (modes/listenerHealth.ts), and a listener that wakes a wait only because it was shut down is
 * no connection.
 */
const handOff = (sockets: SocketService["Type"], processes: ProcessService["Type"]) =>
(service: Run.Service): Effect.Effect<Run.Mode<never>> =>
  Effect.sync(() => {
    const { config, listeners, tracker } = service
    const health = ListenerHealth.make(service, sockets)
    const awaitConnection = (watched: ReadonlyArray<Listener>) =>
      Effect.map(sockets.awaitReadable(watched, tracker.wake), (ready): Run.Trigger =>
        ready === undefined ? { _tag: "Wake" } : { _tag: "Connection", listener: ready })
    const coldPath = coldStart(service, processes)
    const next = Effect.gen(function*() {
      const live = yield* health.check
      const trigger = live.length < listeners.length
        // A listener is dead: wait on the others (never armed) until it is tried again.
        ? yield* health.untilRetry(awaitConnection(live))
        : coldPath === undefined
        ? yield* awaitConnection(listeners)
        : yield* Effect.flatMap(coldPath, Option.match({ onNone: () => awaitConnection(listeners), onSome: Effect.succeed }))
      // Woken by a listener that was shut down (POLLHUP), not by a connection: nothing starts; it is back now.
      const woken = trigger?._tag === "Connection" && trigger.started === undefined ? trigger.listener : undefined
      if (woken !== undefined && !(yield* health.woke(woken))) return undefined
      return trigger
    })
    return {
      next,
      stillWaiting: sockets.isPending(listeners),
      session: (_trigger, activity) =>
        Effect.gen(function*() {
          // Watch arrivals before the app starts, so connections during its start count too.
          const arrivals = yield* sockets.arrivals(listeners, config.user)
          return {
            request: spawnRequest(config, listeners),
            lastActivity: Effect.zipWith(Ref.get(activity), arrivals.latest, (last, seen) => Math.max(last, seen.at ?? last)),
            accepts: "connections",
            notReady: "did not accept a connection",
            // Readiness: the app takes the waiting connection (`--ready notify`: its READY=1 alone, which the core awaits).
            awaitReady: config.ready === "notify" ? Effect.void : sockets.awaitAccepting(listeners),
            onReady: Effect.void,
            look: lookAtActivity(config, listeners, sockets, arrivals, activity),
            // Does it listen on an address of its own instead? Looked at before it is stopped, said after.
            diagnose: (app) =>
              Effect.map(sockets.ownListening(app.pid, listeners), (own) => {
                if (own.length === 0) return Effect.void
                const { listensOn, message, upstream } = AppListening.hint(own, listeners.length)
                return event("warn", "hint", message, { pid: app.pid, listens_on: listensOn, upstream })
              })
          } satisfies Run.Session
        })
    }
  })

/**
 * Serves the service on listeners already open: waits for a connection (or a `wake`), runs the app, forever.
 * Registers with the Registry if there is one. Interrupting it stops a running app gracefully first.
 */
export const serve = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>
): Effect.Effect<never, never, SocketService | ProcessService | RelayService> =>
  // Not an Effect.fn: a span with its captured stack would stay with each service's fiber (7 KB each).
  config.accept
    ? Accept.serve(config, listeners)
    : config.upstream !== undefined
    ? Proxy.serve(config, listeners, config.upstream)
    : Effect.flatMap(
      Effect.zip(SocketService, ProcessService),
      ([sockets, processes]) => Run.serve(config, listeners, handOff(sockets, processes))
    )

/**
 * Runs one service until interrupted: opens its listeners, serves, and on interruption stops the app and
 * closes the listeners (removing the socket files soad created).
 */
export const run = (
  config: ServiceConfig.ServiceConfig
): Effect.Effect<never, ListenError, SocketService | ProcessService | RelayService> =>
  Effect.scoped(Effect.flatMap(listen(config), (listeners) => serve(config, listeners))).pipe(
    Effect.annotateLogs("service", config.name)
  )

/**
 * Starts one service in the current scope: returns once its listeners are open, with the serving fiber;
 * closing the scope stops the app and closes the listeners.
 */
export const start = (
  config: ServiceConfig.ServiceConfig
): Effect.Effect<Fiber.RuntimeFiber<never>, ListenError, SocketService | ProcessService | RelayService | Scope.Scope> =>
  Effect.flatMap(
    listen(config).pipe(Effect.annotateLogs("service", config.name)),
    (listeners) => Effect.forkScoped(serve(config, listeners))
  )
