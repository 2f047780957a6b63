/**
 * The words of SocketService that its drivers share (os/sockets.ts is the live service, os/sentinel.ts counts
 * arrivals for it): the service's operations, a listener, what has arrived on listeners, a wake-up, a connection
 * taken in accept mode, and accepting's error. SocketService.ts exports them; this module holds them so that no
 * driver imports the service it serves.
 *
 * @internal
 */
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Address from "../Address.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import type * as Connections from "./connections.js"
import type * as Listeners from "./listeners.js"
import type { ListenError, SocketFileError } from "./listeners.js"

/** An open listening socket. */
export interface Listener {
  /** The name the app sees in `LISTEN_FDNAMES`. */
  readonly name: string
  readonly address: Address.Address
  /** soad's own fd for it; the app gets it at 3, 4, … */
  readonly fd: number
  /** The address as a user writes it, for logs. */
  readonly description: string
  /** What the socket is bound to (getsockname), to find its connections; undefined where unknown. */
  readonly local?: Connections.Endpoint | undefined
  /**
   * The UNIX socket file soad created for it (device and inode), to recognise it later; undefined: none. It is the
   * file of the socket at `fd` now: one soad makes anew (`revive`) updates it in place.
   */
  readonly file?: Listeners.SocketFile | undefined
}

/** What has arrived on a set of listeners while they are watched. */
export interface Arrivals {
  /** Each connection is counted (true), or only readability is seen (false: some may be missed). */
  readonly exact: boolean
  /**
   * The latest arrival so far, read when needed. Counting does not wake soad (or its sentinel) per connection: after
   * one, the listener is disarmed for 100 ms and the moment it is armed again counts as its latest arrival, so `at`
   * is never earlier than the real latest connection and at most about 100 ms later (src/native/count.c).
   */
  readonly latest: Effect.Effect<LatestArrival>
}

/** The latest arrival on watched listeners. */
export interface LatestArrival {
  /**
   * Clock time (milliseconds) of the latest connection since watching began, or a moment at most about 100 ms after
   * it (never before); undefined if none yet.
   */
  readonly at: number | undefined
  /** Counting had stopped (an app cleared O_ASYNC) and was set again: arrivals meanwhile may be missing. */
  readonly rearmed: boolean
}

/**
 * A way to end a wait early without another fiber: `subscribe` registers a callback and returns how to remove
 * it. soad uses it for `soad wake` (each waiting service would otherwise keep two extra fibers, about 8 KB).
 */
export interface Wakeup {
  readonly subscribe: (callback: () => void) => () => void
}

/** `--accept`: a connection soad took from a listener, for one instance of the app. */
export interface Connection {
  /** soad's fd for it, close-on-exec; the instance gets it as fds 0, 1 and 3. */
  readonly fd: number
  /** The peer of a TCP connection (REMOTE_ADDR, REMOTE_PORT); undefined for a UNIX socket. */
  readonly remote?: { readonly ip: string; readonly port: number } | undefined
  /** The uid of a UNIX connection's peer (SO_PEERCRED); undefined for TCP, or if it could not be read. */
  readonly uid?: number | undefined
}

/** Accepting failed (`code`: EMFILE, ENFILE, ENOBUFS, ENOMEM when soad is out of fds or memory). */
export class AcceptError extends Data.TaggedError("AcceptError")<{
  readonly code: string
  readonly message: string
}> {}

/** The socket operations the Activator needs (SocketService's shape; os/sockets.ts is the live one). */
export interface SocketServiceApi {
  /** Every connection can be counted on this platform (Linux), not only seen as readability. */
  readonly exactCounting: boolean
  /** Opens (or adopts) a listener; closing the scope closes it and removes the socket file soad created. */
  readonly open: (
    config: Address.ListenerConfig,
    options: ServiceConfig.SocketOptions
  ) => Effect.Effect<Listener, ListenError, Scope.Scope>
  /**
   * Gives the UNIX socket file soad created for the listener the mode and owner of `options` (reload), only if
   * the file at its path is still that socket; does nothing for other listeners.
   */
  readonly applyOptions: (listener: Listener, options: ServiceConfig.SocketOptions) => Effect.Effect<void, SocketFileError>
  /**
   * Brings back a listener that no longer listens: an app shares it (its fd 3) and may shut it down (shutdown(2) at
   * its graceful stop), after which it refuses every connection and polls readable forever. `listen()` again (TCP),
   * else a new socket at the same address with the mode and owner of `options`, at the same fd (a UNIX socket file
   * is replaced only if it is still soad's). undefined: it listens. Fails if it cannot be brought back (an inherited
   * UNIX socket, a port taken meanwhile).
   */
  readonly revive: (listener: Listener, options: ServiceConfig.SocketOptions) => Effect.Effect<Listeners.Revival | undefined, ListenError>
  /**
   * Completes with a listener that has a connection pending (accepts nothing), or with undefined when `wakeup`
   * fires first; interruptible. A listener that was shut down (see `revive`) completes it too: ask `revive`.
   */
  readonly awaitReadable: (listeners: ReadonlyArray<Listener>, wakeup?: Wakeup) => Effect.Effect<Listener | undefined>
  /**
   * `--accept`: takes one connection from the listener, or undefined if none waits any more; closing the scope
   * closes soad's copy of it (right after the instance that serves it has been spawned).
   */
  readonly accept: (listener: Listener) => Effect.Effect<Connection | undefined, AcceptError, Scope.Scope>
  /** Is a connection waiting on any of these listeners right now? */
  readonly isPending: (listeners: ReadonlyArray<Listener>) => Effect.Effect<boolean>
  /**
   * Completes once an app started on these listeners accepts: nothing waits in the backlog any more, or a
   * connection it accepted is open. (No kernel event says so: the live service looks every 20 ms.)
   */
  readonly awaitAccepting: (listeners: ReadonlyArray<Listener>) => Effect.Effect<void>
  /**
   * Watches connections arriving on the listeners until the scope closes. `runAs`: the app runs as that user, so
   * the counting must not let it signal soad.
   */
  readonly arrivals: (
    listeners: ReadonlyArray<Listener>,
    runAs?: ServiceConfig.RunAs | undefined
  ) => Effect.Effect<Arrivals, never, Scope.Scope>
  /** Open connections to the listeners can be seen on this platform (Linux: /proc/net). */
  readonly connectionAware: boolean
  /** How many accepted connections to the listeners are open now (0 where they cannot be seen). */
  readonly openConnections: (listeners: ReadonlyArray<Listener>) => Effect.Effect<number>
  /**
   * The addresses the process group `pgid` listens on by itself, not these listeners (an app that binds its own
   * port instead of taking fd 3); empty where it cannot be seen (Linux only).
   */
  readonly ownListening: (pgid: number, listeners: ReadonlyArray<Listener>) => Effect.Effect<ReadonlyArray<Connections.Endpoint>>
}
