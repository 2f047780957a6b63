/**
 * Effect's default Clock and Random as made for this run. Effect makes its own when its modules are evaluated: the
 * Clock's nanosecond time is process.hrtime plus an origin taken then, and the Random is seeded then. The startup
 * snapshot (cli/snapshot.ts) evaluates them when it is built, so every soad restored from it would share that
 * build's origin (its clock off by however long the machine ran before a reboot since) and its random sequence
 * (every soad backing off with the same jitter). soad's runs take these instead (cli/main.ts).
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"

/**
 * A Clock whose nanosecond time is the monotonic process.hrtime, its origin taken now; milliseconds are the wall
 * clock's and sleeping is Effect's own, as Effect's default Clock has them.
 */
export const clock = (): Clock.Clock => {
  const live = Clock.make()
  const origin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint()
  const nanos = () => origin + process.hrtime.bigint()
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => Date.now(),
    currentTimeMillis: Effect.sync(() => Date.now()),
    unsafeCurrentTimeNanos: nanos,
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => live.sleep(duration)
  }
}

/** A Random seeded now (V8 seeds Math.random anew in each process, a restored snapshot too). */
export const random = (): Random.Random => Random.make(Math.random())

/** Runs `effect` with both. */
export const provide = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(Effect.withClock(clock()), Effect.withRandom(random()))
