/**
 * A server on a listening UNIX socket soad made (the control socket): connections accepted by the binding, each
 * handed over as a node:net socket. Not net.Server.listen: every listen loads node:cluster, and with it
 * node:child_process and node:dgram, which a sleeping soad would keep (about 0.5 MB) for a fork it never does.
 *
 * Readiness comes from the binding's one-shot poll (poll.c), accepting from accept.c (non-blocking,
 * close-on-exec): a client that left between the two leaves nothing to take. Accepting that fails (out of fds)
 * pauses 100 ms, doubling to 5 s, before the next look: never a spin on a connection that stays pending.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import { event } from "../Logging.js"
import { native } from "./native.js"
import { net } from "./lazyNet.js"

/** At most this many connections are accepted per readiness, so that a flood cannot hold the loop. */
const acceptBatch = 64

/** The pause after accepting failed (EMFILE, ENFILE, ENOMEM): 100 ms, doubling to 5 s; reset by a success. */
const pause = Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(5))))

/** Until `fd` is readable (a connection is pending), or the wait is interrupted. */
const readable = (fd: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const id = native().watch(fd, (error) => resume(error === null ? Effect.void : Effect.dieMessage(`poll of fd ${fd}: ${error}`)))
    return Effect.sync(() => native().unwatch(id))
  })

/**
 * Serves the listening socket `fd` (soad's, which this closes when the scope ends) for as long as the scope lasts:
 * `onSocket` gets each connection. The scope's end stops accepting and destroys every connection still open, so
 * that no silent client holds shutdown.
 */
export const serve = (
  fd: number,
  description: string,
  onSocket: (socket: Net.Socket) => void
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const n = native()
    const open = new Set<Net.Socket>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const socket of open) socket.destroy()
        open.clear()
        n.close(fd)
      })
    )
    /** Accepts what is pending (up to acceptBatch); fails with what accept said. */
    const acceptPending = Effect.try({
      try: () => {
        for (let i = 0; i < acceptBatch; i++) {
          const taken = n.acceptConnection(fd)
          if (taken === null) return
          let socket: Net.Socket
          try {
            socket = new (net().Socket)({ fd: taken.fd, readable: true, writable: true })
          } catch (cause) {
            n.close(taken.fd) // never handed over: nobody else would close it
            throw cause
          }
          open.add(socket)
          socket.once("close", () => open.delete(socket))
          onSocket(socket)
        }
      },
      catch: (cause) => cause
    })
    const driver = yield* Schedule.driver(pause)
    yield* readable(fd).pipe(
      Effect.zipRight(acceptPending),
      Effect.matchEffect({
        onFailure: (cause) =>
          event("warn", "accept_failed", `${description}: cannot accept a connection (${cause instanceof Error ? cause.message : String(cause)}); trying again after a pause`, {}).pipe(
            Effect.zipRight(Effect.ignore(driver.next(undefined)))
          ),
        onSuccess: () => driver.reset
      }),
      Effect.forever,
      Effect.forkScoped
    )
  })
