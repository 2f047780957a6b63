/**
 * The Clock and Random soad runs with (os/runDefaults.ts), made at run time: a soad restored from the startup
 * snapshot would otherwise measure with the origin Effect's Clock took when the snapshot was made (wrong by however
 * long the machine ran before a reboot since), and every one would draw the same jitter from the Random Effect
 * seeded then.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import { describe, expect, it } from "vitest"
import * as RunDefaults from "../../src/os/runDefaults.js"

describe("the run's Clock and Random", () => {
  it("the Clock's nanosecond time is the wall clock's now, then runs on monotonically; milliseconds are the wall clock's", () => {
    const clock = RunDefaults.clock()
    const first = clock.unsafeCurrentTimeNanos()
    expect(Math.abs(Number(first / 1_000_000n) - Date.now())).toBeLessThan(1_000)
    expect(clock.unsafeCurrentTimeNanos()).toBeGreaterThanOrEqual(first)
    expect(Math.abs(clock.unsafeCurrentTimeMillis() - Date.now())).toBeLessThan(1_000)
  })

  it("a run sees them: its Clock is the run's, and two runs draw different random numbers", () => {
    const run = () =>
      Effect.runSync(RunDefaults.provide(Effect.all([Clock.clockWith(Effect.succeed), Random.next])))
    const [clockA, randomA] = run()
    const [, randomB] = run()
    expect(clockA).not.toBe(Effect.runSync(Clock.clockWith(Effect.succeed)))
    expect(randomA).not.toBe(randomB)
  })
})
