/**
 * Reloads, coalesced: a request (a SIGHUP, a `soad reload`) that comes while a reload runs is folded into one
 * more reload after it, so a burst of any number of requests costs at most two reloads, and the last one reads
 * the file as it is after the burst.
 *
 * Why not a sliding queue of requests: Node dispatches each delivered signal in its own callback, and Effect runs
 * a woken fiber in the microtasks of that callback, so a reload started by the first signal of a burst ran to its
 * end before the next signal was even dispatched: every signal got a reload of its own (30 SIGHUPs within 1.5 s
 * kept a soad of 1,000 services reloading for 15 s). Here a woken reloader first sleeps for zero time on the Clock
 * (a timer: the rest of the burst is dispatched before it fires, and folds into the same reload).
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** A running reloader. */
export interface Reloader<A> {
  /** Asks for a reload (from a signal handler: never blocks, never fails). */
  readonly unsafeRequest: () => void
  /** Asks for a reload and waits for the one that covers this request (it starts after it), with its outcome. */
  readonly request: Effect.Effect<A>
}

/**
 * Runs `reload` once per burst of requests, until the scope closes; `reload`'s outcome goes to the requests it
 * covers (every request made before it started).
 */
export const make = <A, R>(reload: Effect.Effect<A, never, R>): Effect.Effect<Reloader<A>, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    const wanted = yield* Effect.makeLatch(false)
    let waiting: Array<Deferred.Deferred<A>> = []
    const once = Effect.gen(function*() {
      yield* wanted.await
      // Let the rest of a burst arrive first (see above): what comes during the sleep joins this reload.
      yield* Effect.sleep(Duration.zero)
      yield* wanted.close
      const covered = waiting
      waiting = []
      const outcome = yield* reload
      for (const deferred of covered) Deferred.unsafeDone(deferred, Effect.succeed(outcome))
    })
    yield* Effect.forkScoped(Effect.forever(once))
    return {
      unsafeRequest: () => wanted.unsafeOpen(),
      request: Effect.gen(function*() {
        const deferred = yield* Deferred.make<A>()
        waiting.push(deferred)
        yield* wanted.open
        return yield* Deferred.await(deferred)
      })
    }
  })
