/**
 * The Prometheus exposition (observe/metrics.ts) of services that have had no event yet: each service's series are
 * there at 0 (so rate() and alerts see them from the start), written without reading their metrics. Reading them
 * made a hook per service and series that Effect's registry keeps for good: a first scrape of 1,000 services grew
 * soad by about 25 MB.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Counters from "../../src/observe/counters.js"
import * as Metrics from "../../src/observe/metrics.js"
import * as Registry from "../../src/Registry.js"
import { World } from "../../src/testing.js"
import { stoppedStatus } from "./statuses.js"

const status = stoppedStatus

/** A registry of these services, and the exposition read with it (and the fake sockets for open connections). */
const scrape = (statuses: ReadonlyArray<Registry.Status>) =>
  Effect.gen(function*() {
    const registry = yield* Registry.make
    for (const known of statuses) {
      yield* registry.register({ name: known.name, status: Effect.succeed(known), wake: Effect.succeed(""), sleep: Effect.succeed("") })
    }
    return yield* Metrics.exposition.pipe(
      Effect.provide(Layer.merge(new World().layer, Layer.succeed(Registry.Registry, registry)))
    )
  })

/** Every sample line of this family and service. */
const samples = (text: string, name: string, service: string) =>
  text.split("\n").filter((line) => line.startsWith(name) && line.includes(`service="${service}"`))

const soadSeries = Effect.map(Metric.snapshot, (pairs) => [...pairs].filter((pair) => pair.metricKey.name.startsWith("soad_")).length)

describe("the exposition of services with no event yet", () => {
  it.scoped("has every series of each at 0, each family once, and makes no metric for them", () =>
    Effect.gen(function*() {
      yield* scrape([]) // soad's own series (soad_log_lines_dropped_total) exist from the first scrape
      const before = yield* soadSeries
      const text = yield* scrape([
        status("zero-a"),
        status("zero-b", { relayedBytes: { in: 0, out: 0 }, waitingPages: 0 }),
        status("zero-c", { instances: 0 })
      ])
      expect(yield* soadSeries).toBe(before) // nothing read into Effect's registry: no hook per service
      for (const service of ["zero-a", "zero-b", "zero-c"]) {
        for (const name of ["soad_activations_total", "soad_idle_stops_total", "soad_crashes_total", "soad_failed_starts_total"]) {
          expect(samples(text, `${name}{`, service)).toEqual([`${name}{service="${service}"} 0`])
        }
        const buckets = samples(text, "soad_cold_start_seconds_bucket{", service)
        expect(buckets).toHaveLength(Counters.series.coldStart.bounds.length + 1)
        expect(buckets.at(-1)).toBe(`soad_cold_start_seconds_bucket{service="${service}",le="+Inf"} 0`)
        expect(samples(text, "soad_cold_start_seconds_count{", service)).toEqual([`soad_cold_start_seconds_count{service="${service}"} 0`])
      }
      expect(samples(text, "soad_relay_failures_total{", "zero-b")).toEqual([`soad_relay_failures_total{service="zero-b"} 0`])
      expect(samples(text, "soad_waiting_pages_total{", "zero-b")).toEqual([`soad_waiting_pages_total{service="zero-b"} 0`])
      expect(samples(text, "soad_relay_failures_total{", "zero-a")).toEqual([])
      expect(samples(text, "soad_accept_refused_total{", "zero-c")).toEqual([
        `soad_accept_refused_total{service="zero-c",reason="per_source"} 0`
      ])
      // A family's lines stay together, under one TYPE line.
      const types = text.split("\n").filter((line) => line.startsWith("# TYPE "))
      expect(new Set(types).size).toBe(types.length)
      const families = text.split("\n").filter((line) => !line.startsWith("#") && line !== "").map((line) => line.replace(/(_bucket|_sum|_count)?[{ ].*/, ""))
      const runs = families.filter((name, i) => i === 0 || families[i - 1] !== name)
      expect(new Set(runs).size).toBe(runs.length)
    }))

  it.scoped("a series with a value shows its value once, not a 0 beside it", () =>
    Effect.gen(function*() {
      yield* Metric.increment(Counters.forService(Counters.activations, "counted"))
      const text = yield* scrape([status("counted", { activations: 1 })])
      expect(samples(text, "soad_activations_total{", "counted")).toEqual([`soad_activations_total{service="counted"} 1`])
    }))
})
