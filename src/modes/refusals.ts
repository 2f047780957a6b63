/**
 * A failed service's refusals (its start limit reached): every connection that waits is closed at once. Counted
 * (`soad_refused_total{service}`) and said at debug level: the `failed` event has said why already.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Listener, SocketService } from "../SocketService.js"
import * as Metric from "effect/Metric"
import { event } from "../Logging.js"
import * as Counters from "../observe/counters.js"

/** `count` connections were refused because the service is failed. */
export const refused = (service: string, count: number): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.incrementBy(Counters.forService(Counters.refused, service), count),
    event("debug", "refused", `refused ${count} connection${count === 1 ? "" : "s"}: the service is failed`, { connections: count })
  )

/** Takes every connection waiting on the listeners and closes it at once (hand-off and accept mode). */
export const closeWaiting = (
  sockets: SocketService["Type"],
  listeners: ReadonlyArray<Listener>,
  service: string
): Effect.Effect<void> =>
  Effect.gen(function*() {
    let closed = 0
    for (const listener of listeners) {
      for (;;) {
        const taken = yield* Effect.scoped(Effect.either(sockets.accept(listener)))
        if (taken._tag === "Left" || taken.right === undefined) break
        closed++
      }
    }
    if (closed > 0) yield* refused(service, closed)
  })
