/**
 * What soad counts, kept with Effect's Metric module, and the cold-start histogram; the exposition is metrics.ts.
 * Every count goes through one function (core/lifecycle.ts `count`), which adds to the service's own counts (what
 * `soad status` shows since the service began: a metric's hook per service and counter would cost an idle service
 * about 1.5 KB) and to these counters (soad-wide, through reloads, as Prometheus expects).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * A per-service series as the exposition writes it before its first event: its name, its help, and for a histogram
 * its bucket bounds (without +Inf). The metrics below are made from these, so the exposition can write a service's
 * series at 0 without reading its metric: Effect's registry would keep a hook for each service and series read
 * (about 1.5 KB each; a first scrape of 1,000 services grew soad by about 25 MB).
 */
export interface Series {
  readonly name: string
  readonly help: string
  readonly bounds?: ReadonlyArray<number>
}

/** The per-service series, by the name of their metric here. */
export const series = {
  activations: { name: "soad_activations_total", help: "Apps started, on a connection or by hand." },
  idleStops: { name: "soad_idle_stops_total", help: "Apps stopped after the idle time." },
  crashes: { name: "soad_crashes_total", help: "Apps that exited by themselves within --min-uptime of their start." },
  failedStarts: {
    name: "soad_failed_starts_total",
    help: "Apps that could not be started, or did not accept a connection within --start-timeout."
  },
  relayFailures: {
    name: "soad_relay_failures_total",
    help: "Proxy mode: connections closed because their relay to the app could not be set up (no fd, the app refused)."
  },
  waitingPages: {
    name: "soad_waiting_pages_total",
    help: "Proxy mode: browser navigations answered with the waiting page (--waiting-page) while the app started."
  },
  acceptRefused: {
    name: "soad_accept_refused_total",
    help: "Accept mode: connections closed at once without an instance, by reason (per_source: --max-connections-per-source)."
  },
  coldStart: {
    name: "soad_cold_start_seconds",
    help: "From a pending connection to the app's first accept.",
    bounds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
  }
} as const satisfies Record<string, Series>

const counterOf = (of: Series) => Metric.counter(of.name, { description: of.help, incremental: true })

/** Apps started. */
export const activations = counterOf(series.activations)

/** Apps stopped because they were idle. */
export const idleStops = counterOf(series.idleStops)

/** Apps that exited by themselves before `--min-uptime`. */
export const crashes = counterOf(series.crashes)

/** Apps that could not be started or did not accept in time. */
export const failedStarts = counterOf(series.failedStarts)

/** Proxy mode: connections closed because their relay could not be set up. */
export const relayFailures = counterOf(series.relayFailures)

/** Proxy mode: browser navigations answered with the waiting page. */
export const waitingPages = counterOf(series.waitingPages)

/** `--ready notify`: datagrams on an app's notify socket from processes that are not the app's, ignored. */
export const notifyIgnored = Metric.counter("soad_notify_ignored_total", {
  description: "--ready notify: datagrams sent to an app's NOTIFY_SOCKET by processes outside the app's session, ignored.",
  incremental: true
})

/** Accept mode: connections closed without an instance, by `reason` (per_source: its source had its share). */
export const acceptRefused = counterOf(series.acceptRefused)

/** Connections closed at once because their service is failed (its start limit reached). */
export const refused = Metric.counter("soad_refused_total", {
  description: "Connections closed at once because their service is failed (start-limit-burst reached; soad wake, restart or a reload resets it).",
  incremental: true
})

/** The reasons `acceptRefused` counts by. */
export const refusalReasons = ["per_source"] as const

/** From the pending connection to the app's first accept. */
export const coldStart = Metric.histogram(
  series.coldStart.name,
  MetricBoundaries.fromIterable(series.coldStart.bounds),
  series.coldStart.help
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

/** Counts one activation, idle stop, crash or failed start of a service. */
export const count = (service: string, key: keyof Counts): Effect.Effect<void> =>
  Metric.increment(forService({ activations, idleStops, crashes, failedStarts }[key], service))
