/**
 * One service: open its listeners, and serve it in the mode its config asks for (modes/index.ts: socket hand-off,
 * proxy, a process per connection), on the one service shell (core/shell.ts): wait for a connection, start the app,
 * watch its activity against the Clock, stop it when idle, and again. Built only from SocketService,
 * ProcessService, RelayService, the Registry it registers with, the Budget its apps start under, the AppLogs their
 * output goes to, and the Clock, so tests run it against fake layers under TestClock. `SoadContext.layer` provides
 * them all (`SoadContext.defaults` the Registry, an unlimited Budget and AppLogs that capture nothing).
 *
 * @since 0.1.0
 */
import type { AppNotify } from "./AppNotify.js"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import { unitOf } from "./core/lifecycle.js"
import type { Budget } from "./Budget.js"
import { event } from "./Logging.js"
import * as Modes from "./modes/index.js"
import type { AppLogs } from "./observe/appLogs.js"
import { ProcessService } from "./ProcessService.js"
import type { Registry } from "./Registry.js"
import type { RelayService } from "./RelayService.js"
import type * as ServiceConfig from "./ServiceConfig.js"
import type { ListenError, Listener } from "./SocketService.js"
import { SocketService } from "./SocketService.js"

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
    if (config.mode._tag === "Accept") return listeners as ReadonlyArray<Listener>
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

/** What serving a service needs of its context: `SoadContext.layer` provides all of it. */
export type Requirements = SocketService | ProcessService | RelayService | AppNotify | Registry | Budget | AppLogs

/**
 * Serves the service on listeners already open: waits for a connection (or a `wake`), runs the app, forever.
 * Registers with the Registry. Interrupting it stops a running app gracefully first.
 */
export const serve = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>
): Effect.Effect<never, never, Requirements> =>
  // Not an Effect.fn: a span with its captured stack would stay with each service's fiber (7 KB each).
  Modes.serve(config, listeners)

/**
 * Starts one service in the current scope: returns once its listeners are open, with the serving fiber;
 * closing the scope stops the app and closes the listeners.
 */
export const start = (
  config: ServiceConfig.ServiceConfig
): Effect.Effect<Fiber.RuntimeFiber<never>, ListenError, Requirements | Scope.Scope> =>
  Effect.flatMap(
    listen(config).pipe(Effect.annotateLogs("service", config.name)),
    (listeners) => Effect.forkScoped(serve(config, listeners))
  )
