/**
 * soad as a library: the services, their live layers and the Activator, for Effect programs that run
 * socket-activated apps in their own scope.
 *
 * @since 0.1.0
 */

/** One service's lifecycle: wait, start, watch activity, stop. */
export * as Activator from "./Activator.js"

/** Listener address forms and their parser. */
export * as Address from "./Address.js"

/** The typed service configuration. */
export * as Config from "./Config.js"

/** Listening sockets: open, wait for a pending connection, count arrivals. */
export * as SocketService from "./SocketService.js"

/** Proxy mode's relay: accept, hold, relay to the app's own address. */
export * as RelayService from "./RelayService.js"

/** The app's process: spawn with the listeners, stop gracefully. */
export * as ProcessService from "./ProcessService.js"

/** Signals by name or number. */
export * as Signal from "./Signal.js"

/** soad's log lines. */
export * as Logging from "./Logging.js"
