/**
 * The status page's history: a bounded ring of buckets of starts and RAM saved, brought up to date by each event
 * and each read (no timer). Pure rules with exact numbers, a property test against a plain log of the events, and
 * the Registry's history fed by the lifecycle under TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import fc from "fast-check"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import * as Backoff from "../../src/core/backoff.js"
import * as History from "../../src/observe/history.js"
import * as Lifecycle from "../../src/core/lifecycle.js"
import * as Saving from "../../src/os/saving.js"
import * as Registry from "../../src/Registry.js"

const minute = 60_000
const small: History.Options = { bucketMs: minute, buckets: 5 }

describe("the history's buckets", () => {
  it("counts each start in the bucket of its time; the ring keeps the last N buckets, oldest first", () => {
    const history = History.make(0, small)
    history.record(10_000, { starts: 1 })
    history.record(70_000, { starts: 2 })
    history.record(119_999, { starts: 1 })
    const snapshot = history.snapshot(4 * minute + 1)
    expect(snapshot.buckets.map((bucket) => bucket.start)).toEqual([0, 1, 2, 3, 4].map((i) => i * minute))
    expect(snapshot.buckets.map((bucket) => bucket.starts)).toEqual([1, 3, 0, 0, 0])
    // Two minutes later the first two buckets have left the window.
    expect(history.snapshot(6 * minute).buckets.map((bucket) => bucket.starts)).toEqual([0, 0, 0, 0, 0])
  })

  it("drops what is older than the window, and stays N buckets after days without an event", () => {
    const history = History.make(0, small)
    history.record(0, { starts: 5, saving: 1000 })
    const later = history.snapshot(3 * 24 * 60 * minute)
    expect(later.buckets).toHaveLength(5)
    expect(later.buckets.every((bucket) => bucket.starts === 0)).toBe(true)
    // The saving went on all along: every bucket of the window saved 1000 bytes on average.
    expect(later.buckets.slice(0, 4).map((bucket) => bucket.savedBytes)).toEqual([1000, 1000, 1000, 1000])
    expect(later.savingNow).toBe(1000)
  })

  it("integrates the saving exactly: each ms saves the stopped apps' peaks, split at bucket edges", () => {
    const history = History.make(0, small)
    history.record(30_000, { saving: 100e6 }) // an app with a 100 MB peak stops at 0:30
    history.record(90_000, { saving: 50e6 }) // another one, 50 MB, at 1:30
    history.record(150_000, { saving: -100e6 }) // the first starts again at 2:30
    const { buckets, savingNow } = history.snapshot(180_000)
    expect(savingNow).toBe(50e6)
    // Minute 0: 100 MB for 30 s of 60 seen; minute 1: 100 MB + 50 MB for the last 30 s; minute 2: 150 then 50 MB.
    expect(buckets.map((bucket) => bucket.start)).toEqual([-1, 0, 1, 2, 3].map((i) => i * minute))
    expect(buckets.map((bucket) => bucket.savedBytes)).toEqual([0, 50e6, 125e6, 100e6, 0])
    // Before the history began, and at 3:00 where it ends now, soad has seen nothing.
    expect(buckets.map((bucket) => bucket.seenMs)).toEqual([0, minute, minute, minute, 0])
  })

  it("averages the first bucket over the part after the history began, and the current one over the part so far", () => {
    const history = History.make(90_000, small)
    history.record(90_000, { saving: 10e6 })
    const { buckets } = history.snapshot(150_000)
    expect(buckets.map((bucket) => bucket.seenMs)).toEqual([0, 0, 0, 30_000, 30_000])
    expect(buckets.at(-2)!.savedBytes).toBe(10e6)
    expect(buckets.at(-1)!.savedBytes).toBe(10e6)
  })

  it("a clock that steps back undoes nothing: the event counts in the newest bucket", () => {
    const history = History.make(0, small)
    history.record(3 * minute, { starts: 1 })
    history.record(1 * minute, { starts: 1 })
    expect(history.snapshot(3 * minute).buckets.at(-1)!.starts).toBe(2)
  })

  it("matches a plain log of the events whatever their order and spacing (property)", () => {
    const event = fc.record({
      gap: fc.oneof(fc.integer({ min: 0, max: 2 * minute }), fc.integer({ min: 0, max: 20 * minute })),
      starts: fc.integer({ min: 0, max: 3 }),
      saving: fc.integer({ min: -50, max: 100 })
    })
    fc.assert(fc.property(fc.integer({ min: 0, max: 10 * minute }), fc.array(event, { maxLength: 60 }), fc.integer({ min: 0, max: 10 * minute }), (origin, events, tail) => {
      const history = History.make(origin, small)
      const log: Array<{ at: number; starts: number; saving: number }> = []
      let at = origin
      let saving = 0
      for (const e of events) {
        at += e.gap
        // The rate never goes below zero: a delta that would is clamped, as the history does.
        const delta = Math.max(-saving, e.saving)
        saving += delta
        history.record(at, { starts: e.starts, saving: delta })
        log.push({ at, starts: e.starts, saving })
      }
      const end = at + tail
      const { buckets } = history.snapshot(end)
      expect(buckets).toHaveLength(small.buckets)
      const windowStart = buckets[0]!.start
      expect(buckets.at(-1)!.start).toBe(Math.floor(end / minute) * minute)
      // Starts: those whose time falls in the window, each in its bucket.
      for (const bucket of buckets) {
        const expected = log.filter((e) => e.at >= bucket.start && e.at < bucket.start + minute).reduce((s, e) => s + e.starts, 0)
        expect(bucket.starts).toBe(expected)
      }
      // Saving: the byte-ms from the log's step function, over each bucket's seen part.
      const rateAt = (t: number) => {
        let rate = 0
        for (const e of log) if (e.at <= t) rate = e.saving
        return rate
      }
      for (const bucket of buckets) {
        let byteMs = 0
        const from = Math.max(bucket.start, origin, windowStart)
        const to = Math.min(bucket.start + minute, end)
        const edges = [from, ...log.map((e) => e.at).filter((t) => t > from && t < to), to]
        for (let i = 0; i + 1 < edges.length; i++) byteMs += rateAt(edges[i]!) * Math.max(0, edges[i + 1]! - edges[i]!)
        expect(bucket.seenMs).toBe(Math.max(0, to - from))
        expect(bucket.savedBytes * bucket.seenMs).toBeCloseTo(byteMs, 3)
      }
    }), { numRuns: 300 })
  })

  it("is two arrays of N numbers whatever happens: a few KB for the defaults", () => {
    expect(History.defaults.buckets * 2 * 8).toBeLessThan(4096)
    const history = History.make(0)
    for (let i = 0; i < 100_000; i++) history.record(i * 1000, { starts: 1, saving: i % 2 === 0 ? 10 : -10 })
    expect(history.snapshot(100_000 * 1000).buckets).toHaveLength(History.defaults.buckets)
  })
})

const config = ServiceConfig.make({ listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/t.sock" } }], command: ["app"] })

describe("the Registry's history under TestClock", () => {
  it.effect("starts land in the bucket of the Clock's time; 24 hours later they are gone", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.make
      yield* registry.record({ starts: 1 })
      yield* TestClock.adjust(Duration.minutes(15))
      yield* registry.record({ starts: 2 })
      let { buckets } = yield* registry.history
      expect(buckets).toHaveLength(144)
      expect(buckets.at(-1)).toMatchObject({ start: 10 * minute, starts: 2 })
      expect(buckets.at(-2)).toMatchObject({ start: 0, starts: 1 })
      yield* TestClock.adjust(Duration.hours(24))
      buckets = (yield* registry.history).buckets
      expect(buckets.reduce((sum, bucket) => sum + bucket.starts, 0)).toBe(0)
    }))

  it.effect("a start and a stop of a service go in: one start; its peak saved from the stop; taken out when it goes", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.make
      const inRegistry = <A, R>(effect: Effect.Effect<A, never, R>) => Effect.provideService(effect, Registry.Registry, registry)
      const tracker = yield* inRegistry(Lifecycle.makeTracker("blog"))
      const backoff = yield* Backoff.make({ initial: Duration.seconds(1), max: Duration.seconds(10) })
      const scope = yield* Scope.make()
      yield* inRegistry(Lifecycle.register(config, [], tracker, backoff)).pipe(Scope.extend(scope))
      yield* inRegistry(Lifecycle.enter(tracker, { _tag: "Spawned", pid: 4242, startedAt: 0 }))
      yield* Lifecycle.updateKnown(tracker, (known) => ({ ...known, memory: Saving.sampled(known.memory, 80e6) })) // what a sample of the app saw
      yield* TestClock.adjust(Duration.minutes(1))
      yield* inRegistry(Lifecycle.enter(tracker, { _tag: "Exited" }))
      yield* TestClock.adjust(Duration.minutes(10))
      const stopped = yield* registry.history
      expect(stopped.buckets.reduce((sum, bucket) => sum + bucket.starts, 0)).toBe(1)
      expect(stopped.savingNow).toBe(80e6)
      // 80 MB saved from 1:00 to 11:00: 9 minutes of the first bucket, 1 of the second.
      expect(stopped.buckets.at(-2)!.savedBytes).toBe(80e6 * 9 / 10)
      expect(stopped.buckets.at(-1)!.savedBytes).toBe(80e6)
      yield* Scope.close(scope, Exit.void) // a reload or a removal: the service goes
      expect((yield* registry.history).savingNow).toBe(0)
    }))
})
