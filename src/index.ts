/**
 * soad as a library: the services, their live layers, one service's lifecycle (Activator) and many services under
 * a budget (Services), for Effect programs that run socket-activated apps in their own scope. Fakes of the services
 * and TestClock helpers for testing such programs are in `soad/testing`.
 *
 * @since 0.1.0
 */

/** One service's lifecycle: wait, start, watch activity, stop. */
export * as Activator from "./Activator.js"

/** Many services in one scope or layer, reloadable, under a RAM budget. */
export * as Services from "./Services.js"

/** Each hosted service's status, and `wake`/`sleep` by name. */
export * as Registry from "./Registry.js"

/** Admission of apps under a RAM budget (`Services` makes one per config); `layerUnlimited` admits every start. */
export * as Budget from "./Budget.js"

/** Where the apps' output goes: inherited by default, or captured and kept for `soad logs`. */
export * as AppLogs from "./AppLogs.js"

/** The typed service configuration, and `make` from address strings and user names. */
export * as ServiceConfig from "./ServiceConfig.js"

/** The TOML config file: load, validate, and every error at once. */
export * as ConfigFile from "./ConfigFile.js"

/** Listener address forms and their parser. */
export * as Address from "./Address.js"

/** Every live service at once: the layer a program provides to run services for real. */
export * as SoadContext from "./SoadContext.js"

/** Listening sockets: open, wait for a pending connection, count arrivals. */
export * as SocketService from "./SocketService.js"

/** The app's process: spawn with the listeners, stop gracefully, contain what it starts. */
export * as ProcessService from "./ProcessService.js"

/** Proxy mode's relay: accept, hold, connect to the app, splice both ways. */
export * as RelayService from "./RelayService.js"

/** An app's own NOTIFY_SOCKET for one run (`--ready notify`): the socket soad reads, and whose processes may send. */
export * as AppNotify from "./AppNotify.js"

/** Signals by name or number. */
export * as Signal from "./Signal.js"

/** soad's log lines and structured events. */
export * as Logging from "./Logging.js"
