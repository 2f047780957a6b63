/**
 * Socket hand-off, the mode of the original soad: the app gets the listeners as fds 3, 4, … (LISTEN_FDS); a
 * connection pending on a listener (or `soad wake`) starts it; it is ready once it accepts; activity is every
 * connection that arrives (counted), one waiting, or one it accepted still open. Where nothing has to be decided
 * at the connection, the listeners are armed with the app's start (the cold path, below ProcessService).
 *
 * @internal
 */
import type { AppNotify } from "../AppNotify.js"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import type { Budget } from "../Budget.js"
import type * as AppRun from "../core/appRun.js"
import * as Idle from "../core/idle.js"
import { now, spawnRequest, stopPolicy } from "../core/lifecycle.js"
import * as Shell from "../core/shell.js"
import { event } from "../Logging.js"
import type { AppLogs } from "../observe/appLogs.js"
import * as Format from "../observe/format.js"
import * as AppListening from "../os/appListening.js"
import { ProcessService } from "../ProcessService.js"
import type { Registry } from "../Registry.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import type { Arrivals, Listener } from "../SocketService.js"
import { SocketService } from "../SocketService.js"
import * as ListenerHealth from "./listenerHealth.js"
import * as Refusals from "./refusals.js"

/** How often open connections are looked at once the idle time has passed with some still open. */
const openConnectionRecheckMillis = 1000

/**
 * One look at a hand-off app's activity (see core/idle.ts): no connection arrived for `idleTimeout`, none
 * waits in the backlog, none it accepted is still open. Reads what arrived only at the deadlines the decisions ask
 * for (nothing runs per connection); `lastActivity` is moved to the activity seen.
 */
const lookAtActivity = (
  service: Shell.Service,
  listeners: ReadonlyArray<Listener>,
  sockets: SocketService["Type"],
  arrivals: Arrivals,
  lastActivity: Ref.Ref<number>
): Effect.Effect<Idle.Decision> => {
  let waitingForClose = false
  return Effect.gen(function*() {
    // The config as it is now: a reload may change -t in place.
    const config = service.config
    const rule: Idle.Rule = { idleMillis: Duration.toMillis(config.idleTimeout), recheckMillis: openConnectionRecheckMillis }
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
const coldStart = (service: Shell.Service, processes: ProcessService["Type"]) => {
  const { listeners, tracker } = service
  const spawnOnPending = processes.spawnOnPending
  if (spawnOnPending === undefined || service.config.ready === "notify") return undefined
  // Made at each arming (an Effect.gen kept per service costs a generator's prototype once it has run). The turn's
  // scope is made only to arm (a service that is not armed waits without one).
  return (scope: Effect.Effect<Scope.Scope>) => Effect.gen(function*() {
    const request = spawnRequest(service.config, listeners)
    // Read at each arming: a reload may have changed the stop signal or timeout in place.
    const policy = stopPolicy(service.config)
    const { gaveUp, notBefore } = yield* service.backoff.state
    if (service.budget.limited || gaveUp || notBefore > (yield* now)) return Option.none()
    const pending = yield* Effect.either(
      Effect.flatMap(scope, (turnScope) => Scope.extend(spawnOnPending(request, policy, tracker.wake), turnScope))
    )
    if (Either.isLeft(pending)) return Option.some<Shell.Trigger | undefined>({ _tag: "Connection", started: Either.left(pending.left) })
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
        return Option.some<Shell.Trigger | undefined>({ _tag: "Wake" })
      case "Started":
        return Option.some<Shell.Trigger | undefined>({ _tag: "Connection", listener: listeners[outcome.index], started: Either.right(outcome) })
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
(service: Shell.Service): Effect.Effect<Shell.ModeHooks<ProcessService | AppLogs | AppNotify>> =>
  Effect.sync(() => {
    const { config, listeners, tracker } = service
    const health = ListenerHealth.make(service, sockets)
    const awaitConnection = (watched: ReadonlyArray<Listener>) =>
      Effect.map(sockets.awaitReadable(watched, tracker.wake), (ready): Shell.Trigger =>
        ready === undefined ? { _tag: "Wake" } : { _tag: "Connection", listener: ready })
    const coldPath = coldStart(service, processes)
    const awaitAll = awaitConnection(listeners)
    // Woken by a listener that was shut down (POLLHUP), not by a connection: nothing starts; it is back now.
    const checked = (trigger: Shell.Trigger | undefined): Effect.Effect<Shell.Trigger | undefined> => {
      const woken = trigger?._tag === "Connection" && trigger.started === undefined ? trigger.listener : undefined
      return woken === undefined ? Effect.succeed(trigger) : Effect.map(health.woke(woken), (listening) => listening ? trigger : undefined)
    }
    // flatMaps, not an Effect.gen: an idle service waits in here, and each generator frame stays on its fiber.
    const next = (scope: Effect.Effect<Scope.Scope>) =>
      Effect.flatMap(
        Effect.flatMap(health.check(), (live) =>
          live.length < listeners.length
            // A listener is dead: wait on the others (never armed) until it is tried again.
            ? health.untilRetry(awaitConnection(live))
            : coldPath === undefined
            ? awaitAll
            : Effect.flatMap(
              coldPath(scope),
              Option.match({ onNone: () => awaitAll, onSome: Effect.succeed })
            )),
        checked
      )
    return {
      next,
      stillWaiting: sockets.isPending(listeners),
      // Failed: every connection waiting on a listener is taken and closed at once.
      refuse: Refusals.closeWaiting(sockets, listeners, config.name),
      act: Shell.runs(service, (_trigger, activity) =>
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
            // The service's config as it is now: a reload may change -t in place.
            look: lookAtActivity(service, listeners, sockets, arrivals, activity),
            // Does it listen on an address of its own instead? Looked at before it is stopped, said after.
            diagnose: (app) =>
              Effect.map(sockets.ownListening(app.pid, listeners), (own) => {
                if (own.length === 0) return Effect.void
                const { listensOn, message, upstream } = AppListening.hint(own, listeners.length)
                return event("warn", "hint", message, { pid: app.pid, listens_on: listensOn, upstream })
              })
          } satisfies AppRun.Session
        }))
    }
  })

/** Serves a service by socket hand-off on listeners already open, forever. */
export const serve = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>
): Effect.Effect<never, never, SocketService | ProcessService | Registry | Budget | AppLogs | AppNotify> =>
  Effect.flatMap(
    Effect.zip(SocketService, ProcessService),
    ([sockets, processes]) => Shell.serve(config, listeners, handOff(sockets, processes))
  )
