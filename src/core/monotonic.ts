/**
 * The one clock soad measures durations and deadlines with: Effect's Clock, so that TestClock governs every one
 * of them in tests, read from its nanosecond time, which the live Clock takes from the monotonic process.hrtime
 * (its currentTimeMillis is Date.now(), which jumps when the system's time is set). Its values are milliseconds
 * since the epoch as of soad's start, so two of them subtract to a duration whatever happened to the wall clock.
 * Wall-clock time is for what people read as a date: log lines' timestamps (Effect's logger), a socket file's
 * age against its mtime (observe/controlPaths.ts), the process start time in the metrics.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/** Clock time in whole milliseconds, so deadlines compare exactly. */
export const now: Effect.Effect<number> = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos / 1_000_000n))

/** Clock time in fractional milliseconds, for measuring short intervals. */
export const preciseNow: Effect.Effect<number> = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos) / 1e6)

/** The same, read outside Effect code (a callback) from the Clock the code runs with. */
export const unsafeNow = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos() / 1_000_000n)
