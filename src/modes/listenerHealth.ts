/**
 * Keeps a hand-off service's listeners listening. The app's fd 3 is soad's own listening socket, and many C, C++
 * and Rust servers call shutdown(2) on it at a graceful stop, to wake threads blocked in accept(): the socket then
 * stops listening for soad too (clients get ECONNREFUSED), and polls readable forever, which is no connection.
 * Before each wait, and when a listener wakes one, soad looks: a listener that no longer listens is brought back
 * (`SocketService.revive`) and that is said once (`listener_revived`); one that cannot be is said once
 * (`listener_dead`), makes the service failing, is left out of the waits (it would wake them at once, forever),
 * and is tried again when the backoff allows.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { event } from "../Logging.js"
import type { Listener, SocketService } from "../SocketService.js"
import { failedWith, logFailing, now } from "../core/lifecycle.js"
import type { Service } from "../core/shell.js"

/** A service's listeners, kept listening. */
export interface Health {
  /**
   * Brings back the listeners that stopped listening (the dead ones only once the backoff allows); the listeners
   * that listen now.
   */
  readonly check: () => Effect.Effect<ReadonlyArray<Listener>>
  /**
   * A listener woke a wait: is a connection pending on it (true), or did it wake because it no longer listens
   * (false: it is brought back, or found dead, now)?
   */
  readonly woke: (listener: Listener) => Effect.Effect<boolean>
  /** Runs `wait` on the listeners that listen, until dead ones may be tried again (then undefined). */
  readonly untilRetry: <A>(wait: Effect.Effect<A>) => Effect.Effect<A | undefined>
}

/** What one look at a listener found: it listened, it was brought back, or it cannot be. */
type Look = "listening" | "revived" | "dead"

/** The health of a service's listeners. */
export const make = (service: Service, sockets: SocketService["Type"]): Health => {
  const { backoff, config, tracker } = service
  /** The listeners that cannot be brought back, by fd: tried again once the Clock reaches `retryAt` (ms). */
  const dead = new Set<number>()
  let retryAt = 0

  /** Looks at one listener, and brings it back if it no longer listens; each change is said once. */
  const look = (listener: Listener): Effect.Effect<Look> =>
    Effect.gen(function*() {
      const revived = yield* Effect.either(sockets.revive(listener, config.socket))
      if (revived._tag === "Left") {
        if (!dead.has(listener.fd)) {
          dead.add(listener.fd)
          const message = revived.left.message
          yield* event("error", "listener_dead", `${message}; the service is failing, and soad tries again`, {
            listener: listener.description
          })
          yield* failedWith(tracker, message)
        }
        return "dead"
      }
      const how = revived.right
      if (how !== undefined) {
        yield* event(
          "info",
          "listener_revived",
          `${listener.description} no longer listened (the app shut it down): ${
            how === "relisten" ? "listening on it again" : "made it anew at the same address"
          }`,
          { listener: listener.description, how }
        )
      }
      // Back from dead: the failures were the listener's, not the app's.
      if (dead.delete(listener.fd)) yield* backoff.reset
      return how === undefined ? "listening" : "revived"
    })

  // Made at each use, not kept: a generator kept per service costs its prototype once it has run.
  const check = () => Effect.gen(function*() {
    const t = yield* now
    const retry = dead.size === 0 || t >= retryAt
    const live: Array<Listener> = []
    for (const listener of service.listeners) {
      if (dead.has(listener.fd) && !retry) continue
      if ((yield* look(listener)) !== "dead") live.push(listener)
    }
    // Dead after this look (newly, or again at its retry): the service fails, and waits its backoff to try again.
    if (dead.size > 0 && retry) {
      const state = yield* backoff.failed
      retryAt = state.notBefore
      yield* logFailing(state, t)
    }
    return live
  })

  const woke = (listener: Listener): Effect.Effect<boolean> => Effect.map(look(listener), (found) => found === "listening")

  const untilRetry = <A>(wait: Effect.Effect<A>): Effect.Effect<A | undefined> =>
    Effect.flatMap(now, (t) =>
      dead.size === 0 ? wait : Effect.raceFirst(wait, Effect.as(Effect.sleep(Math.max(0, retryAt - t)), undefined)))

  return { check, woke, untilRetry }
}
