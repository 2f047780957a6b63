/**
 * Closing soad's own node:net servers (the metrics endpoint; the control socket has os/unixServer.ts) at shutdown
 * without waiting for their clients: net.Server.close only stops accepting and then waits for every open
 * connection to end, so one silent client would hold shutdown (and the apps' stop, whose finalizer runs after) for
 * ever.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Net from "node:net"

/**
 * The longest a release waits for a server's handle to close once its connections are destroyed. Measured: the
 * close callback came 1.5 ms after destroying 20 open connections; the bound only guards the apps' stop, which
 * follows it.
 */
const closeBound = Duration.millis(250)

/**
 * Tracks the server's connections from now on and returns its release: stop accepting, destroy every open
 * connection (idle, keep-alive or mid-request), then wait for the close at most `closeBound`.
 */
export const closer = (server: Net.Server): Effect.Effect<void> => {
  const open = new Set<Net.Socket>()
  server.on("connection", (socket: Net.Socket) => {
    open.add(socket)
    socket.once("close", () => open.delete(socket))
  })
  return Effect.async<void>((resume) => {
    server.close(() => resume(Effect.void))
    for (const socket of open) socket.destroy()
    open.clear()
  }).pipe(
    // A release is uninterruptible: the bound fires only if the wait itself may be interrupted.
    Effect.interruptible,
    Effect.timeoutOption(closeBound),
    Effect.asVoid
  )
}
