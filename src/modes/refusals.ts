/**
 * A failed service's refusals (its start limit reached): every connection that waits is closed at once. Counted
 * (`soad_refused_total{service}`) and said at debug level: the `failed` event has said why already.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { event } from "../Logging.js"
import * as Counters from "../observe/counters.js"

/** `count` connections were refused because the service is failed. */
export const refused = (service: string, count: number): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.incrementBy(Counters.forService(Counters.refused, service), count),
    event("debug", "refused", `refused ${count} connection${count === 1 ? "" : "s"}: the service is failed`, { connections: count })
  )
