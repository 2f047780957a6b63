/**
 * The words of AppNotify that its live driver (os/notifySockets.ts) shares: a notify socket, a datagram and its
 * sender, the error opening one, and what the run core needs. AppNotify.ts exports them; this module holds them so
 * that the driver does not import the service it serves.
 *
 * @internal
 */
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** One datagram and who sent it (from SCM_CREDENTIALS; pid 0 if the kernel gave none). */
export interface NotifyMessage {
  readonly message: string
  readonly pid: number
  readonly uid: number
}

/** A bound notify socket: the address for the app's NOTIFY_SOCKET, and its datagrams as they come. */
export interface NotifySocket {
  readonly path: string
  /** Waits for datagrams and returns those that came (at least one). */
  readonly receive: Effect.Effect<ReadonlyArray<NotifyMessage>>
}

/** The notify socket cannot be opened; `code` is the errno name. */
export class NotifyError extends Data.TaggedError("NotifyError")<{ readonly code: string; readonly message: string }> {}

/** What the run core needs: a socket per run, and the session a sender is in. */
export interface AppNotifyApi {
  /** Binds a fresh notify socket for a run of `service`, closed with the scope. */
  readonly open: (service: string) => Effect.Effect<NotifySocket, NotifyError, Scope.Scope>
  /** The process session `pid` is in (the app is its session's leader, so its processes are in session app.pid). */
  readonly sessionOf: (pid: number) => Effect.Effect<number | undefined>
}
