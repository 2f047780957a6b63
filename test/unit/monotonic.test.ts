/**
 * One clock for durations (core/monotonic.ts): Effect's Clock, read from its monotonic nanosecond time. The fault:
 * a duration taken between two clocks, the wall clock (Clock.currentTimeMillis, Date.now() when live) and the
 * monotonic one, which part apart when the system's time is set (NTP, an admin): a crashed app's "next try in"
 * said an hour too much, once the wall clock was set an hour ahead.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Backoff from "../../src/core/backoff.js"
import * as Monotonic from "../../src/core/monotonic.js"
import { root } from "../harness.js"

/** The live Clock after the system's time was set an hour ahead: its wall time moved, its monotonic time did not. */
const setAhead = (() => {
  const live = Clock.make()
  const hour = 3_600_000
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => live.unsafeCurrentTimeMillis() + hour,
    unsafeCurrentTimeNanos: () => live.unsafeCurrentTimeNanos(),
    currentTimeMillis: Effect.sync(() => live.unsafeCurrentTimeMillis() + hour),
    currentTimeNanos: live.currentTimeNanos,
    sleep: (duration) => live.sleep(duration)
  }
  return clock
})()

describe("one clock for durations", () => {
  it("a backoff's next try is its delay away on the clock the service shell reads, whatever the wall clock did", async () => {
    const left = await Effect.runPromise(
      Effect.gen(function*() {
        const backoff = yield* Backoff.make({ initial: Duration.millis(500), max: Duration.seconds(60) })
        const { notBefore } = yield* backoff.failed
        return notBefore - (yield* Monotonic.now)
      }).pipe(Effect.withClock(setAhead))
    )
    expect(left).toBeGreaterThan(0)
    expect(left).toBeLessThanOrEqual(600) // 0.5 s, jittered by up to 20 %
  })

  it("no module of src reads the Clock's time but core/monotonic.ts", () => {
    const sources = (dir: string): Array<string> =>
      Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? sources(Path.join(dir, entry.name)) : entry.name.endsWith(".ts") ? [Path.join(dir, entry.name)] : []
      )
    const readers = sources(Path.join(root, "src"))
      .filter((file) => /[Cc]urrentTimeMillis|[Cc]urrentTimeNanos/.test(Fs.readFileSync(file, "utf8")))
      .map((file) => Path.relative(root, file))
    // (and the clock harness of soad/testing, a TestClock of its own: its sleeps are in its millis)
    expect(readers).toEqual(["src/core/monotonic.ts", "src/testing/clock.ts"])
  })
})
