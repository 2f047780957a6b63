/**
 * What soad counts, kept with Effect's Metric module: the one set of counters every mode increments and `soad
 * status` reads back (`counts`), and the cold-start histogram. The exposition is metrics.ts.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/** Apps started. */
export const activations = Metric.counter("soad_activations_total", {
  description: "Apps started, on a connection or by hand.",
  incremental: true
})

/** Apps stopped because they were idle. */
export const idleStops = Metric.counter("soad_idle_stops_total", {
  description: "Apps stopped after the idle time.",
  incremental: true
})

/** Apps that exited by themselves before `--min-uptime`. */
export const crashes = Metric.counter("soad_crashes_total", {
  description: "Apps that exited by themselves within --min-uptime of their start.",
  incremental: true
})

/** Apps that could not be started or did not accept in time. */
export const failedStarts = Metric.counter("soad_failed_starts_total", {
  description: "Apps that could not be started, or did not accept a connection within --start-timeout.",
  incremental: true
})

/** Proxy mode: connections closed because their relay could not be set up. */
export const relayFailures = Metric.counter("soad_relay_failures_total", {
  description: "Proxy mode: connections closed because their relay to the app could not be set up (no fd, the app refused).",
  incremental: true
})

/** Proxy mode: browser navigations answered with the waiting page. */
export const waitingPages = Metric.counter("soad_waiting_pages_total", {
  description: "Proxy mode: browser navigations answered with the waiting page (--waiting-page) while the app started.",
  incremental: true
})

/** `--ready notify`: datagrams on an app's notify socket from processes that are not the app's, ignored. */
export const notifyIgnored = Metric.counter("soad_notify_ignored_total", {
  description: "--ready notify: datagrams sent to an app's NOTIFY_SOCKET by processes outside the app's session, ignored.",
  incremental: true
})

/** Accept mode: connections closed without an instance, by `reason` (per_source: its source had its share). */
export const acceptRefused = Metric.counter("soad_accept_refused_total", {
  description: "Accept mode: connections closed at once without an instance, by reason (per_source: --max-connections-per-source).",
  incremental: true
})

/** Connections closed at once because their service is failed (its start limit reached). */
export const refused = Metric.counter("soad_refused_total", {
  description: "Connections closed at once because their service is failed (start-limit-burst reached; soad wake, restart or a reload resets it).",
  incremental: true
})

/** The reasons `acceptRefused` counts by. */
export const refusalReasons = ["per_source"] as const

/** From the pending connection to the app's first accept. */
export const coldStart = Metric.histogram(
  "soad_cold_start_seconds",
  MetricBoundaries.fromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  "From a pending connection to the app's first accept."
)

/** A metric for one service. */
export const forService = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, service: string) =>
  Metric.tagged(metric, "service", service)


/** The counts of one service that `soad status` shows. */
export interface Counts {
  readonly activations: number
  readonly idleStops: number
  readonly crashes: number
  readonly failedStarts: number
}

/** No counts. */
export const zero: Counts = { activations: 0, idleStops: 0, crashes: 0, failedStarts: 0 }

const countValue = (metric: Metric.Metric.Counter<number>, service: string) =>
  Effect.map(Metric.value(forService(metric, service)), (state) => state.count)

/** A service's counts, read back from the counters (since `since`: what they were when the service began). */
export const counts = (service: string, since: Counts = zero): Effect.Effect<Counts> =>
  Effect.gen(function*() {
    return {
      activations: (yield* countValue(activations, service)) - since.activations,
      idleStops: (yield* countValue(idleStops, service)) - since.idleStops,
      crashes: (yield* countValue(crashes, service)) - since.crashes,
      failedStarts: (yield* countValue(failedStarts, service)) - since.failedStarts
    }
  })


/** Counts one activation, idle stop, crash or failed start of a service. */
export const count = (service: string, key: keyof Counts): Effect.Effect<void> =>
  Metric.increment(forService({ activations, idleStops, crashes, failedStarts }[key], service))

/**
 * `count` without a fiber, for a hot path (accept mode's lane, a call per connection): the service's counter is
 * found once, and each call adds 1 as Metric.increment does (soad sets no fiber metric labels). Measured under
 * --lite-mode: 0.4 µs a call, against 11 µs for Metric.increment run as an Effect of its own.
 */
export const counter = (service: string, key: keyof Counts): () => void => {
  const metric = forService({ activations, idleStops, crashes, failedStarts }[key], service)
  return () => metric.unsafeUpdate(1, [])
}
