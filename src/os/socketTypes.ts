/**
 * The words of SocketService that its drivers share (os/sentinel.ts counts arrivals for it): a listener, what has
 * arrived on listeners, a wake-up, a connection taken in accept mode, and accepting's error. SocketService.ts
 * exports them; this module holds them so that no driver imports the service it serves.
 *
 * @internal
 */
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Address from "../Address.js"
import type * as Connections from "./connections.js"
import type * as Listeners from "./listeners.js"

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
