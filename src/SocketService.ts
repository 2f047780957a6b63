/**
 * Listening sockets: open them in a Scope, wait until a connection is pending without accepting it, and see
 * every connection that arrives while the app accepts them.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Sockets from "./os/sockets.js"
import type { SocketServiceApi } from "./os/socketTypes.js"

export { AcceptError } from "./os/socketTypes.js"
export type { Arrivals, Connection, LatestArrival, Listener, Wakeup } from "./os/socketTypes.js"

/** Opening a listener failed; `message` says what is wrong and what to do. */
export { ListenError } from "./os/listeners.js"

/** A reloaded mode or owner could not be given to a socket file (`replaced`: the file is not soad's any more). */
export { SocketFileError } from "./os/listeners.js"

/** How a listener that no longer listened was brought back: `listen()` again, or a new socket at its address. */
export type { Revival } from "./os/listeners.js"

/** The socket operations the Activator needs (their contract: SocketServiceApi). */
export class SocketService extends Context.Tag("soad/SocketService")<SocketService, SocketServiceApi>() {}

/** The live service over the native binding. */
export const make: Effect.Effect<SocketService["Type"]> = Sockets.make

/** The live layer. */
export const layer: Layer.Layer<SocketService> = Layer.effect(SocketService, make)
