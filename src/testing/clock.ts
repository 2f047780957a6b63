/**
 * Deterministic time for tests of soad's services under TestClock (`it.effect`/`it.scoped` of @effect/vitest, or
 * `TestContext.TestContext`). Part of `soad/testing`.
 *
 * TestClock.adjust moves time to each pending sleep in turn, but between two sleeps it cannot reliably tell
 * whether a woken fiber has already registered its next one (in Effect 3 it only sees fibers listed in a test
 * annotation, and a woken fiber still shows as suspended until the scheduler runs it). So the code under test
 * runs `supervised`, and `settle` runs real event-loop turns (no test time passes) until every one of its
 * fibers has been waiting on the same thing for several turns. `advance` then moves the clock one sleep at a
 * time, settling after each. A plain `TestClock.adjust("60 seconds")` may instead jump past a deadline the code
 * had not yet set, and the test then sees a stop late, or not at all.
 *
 * The supervised code runs its fibers' turns on immediates (one real event-loop turn runs all that was due, in
 * well under a millisecond) rather than on Effect's default setTimeout(0) (at least 1 ms each): a test of a
 * lifecycle settles thousands of times.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberStatus from "effect/FiberStatus"
import * as MutableRef from "effect/MutableRef"
import * as Scheduler from "effect/Scheduler"
import * as SortedSet from "effect/SortedSet"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"

const fibers = MutableRef.make(SortedSet.empty<Fiber.RuntimeFiber<unknown, unknown>>(Fiber.Order))

/**
 * Runs `effect` with its fibers (and their children, forked ones too) watched by `settle`, on immediates. Wrap the
 * code under test in it (`Activator.start(config).pipe(supervised)`); the test's own fiber stays outside.
 */
export const supervised = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Supervisor.fibersIn(fibers), (supervisor) => Effect.supervised(effect, supervisor)).pipe(
    Effect.withScheduler(scheduler)
  )

/**
 * The code under test runs its fibers' turns on immediates, not on Effect's default timers (setTimeout(0) waits at
 * least 1 ms): one real turn of the event loop, `turn`, then runs everything that was due, in well under a ms.
 */
const scheduler = Scheduler.makeBatched((runBatch) => setImmediate(runBatch))

/** One real turn of the event loop: what the fibers scheduled, and the I/O callbacks due. */
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Where every supervised fiber stands, as text (undefined while one runs); fibers that are done are forgotten. */
const snapshot = Effect.gen(function*() {
  const parts: Array<string> = []
  const done: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
  for (const fiber of MutableRef.get(fibers)) {
    if (fiber.unsafePoll() !== null) {
      done.push(fiber)
      continue
    }
    const status = yield* Fiber.status(fiber)
    if (FiberStatus.isRunning(status)) return undefined
    parts.push(`${fiber.id().id}:${FiberStatus.isSuspended(status) ? String(status.blockingOn) : status._tag}`)
  }
  if (done.length > 0) MutableRef.update(fibers, (set) => done.reduce((rest, fiber) => SortedSet.remove(rest, fiber), set))
  return parts.join(",")
})

/**
 * Lets every supervised fiber run until it waits on something (a sleep, a callback of the fakes), with no test time
 * passing: after a `world.connect`, say, soad has started the app once `settle` returns.
 */
export const settle: Effect.Effect<void> = Effect.gen(function*() {
  let stable = 0
  let last: string | undefined
  for (let i = 0; i < 200 && stable < 2; i++) {
    yield* turn
    const now = yield* snapshot
    stable = now !== undefined && now === last ? stable + 1 : 0
    last = now
  }
})

/**
 * Moves the TestClock forward by `duration`, waking each sleep due on the way in order and settling after each:
 * what soad does at each moment happens at that moment, as with real time.
 */
export const advance = (duration: Duration.DurationInput): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* settle
    const target = (yield* TestClock.currentTimeMillis) + Duration.toMillis(duration)
    for (;;) {
      const now = yield* TestClock.currentTimeMillis
      const next = Chunk.reduce(yield* TestClock.sleeps(), Infinity, (min, at) => Math.min(min, at))
      const to = Math.min(target, Math.max(next, now))
      yield* TestClock.adjust(Duration.millis(to - now))
      yield* settle
      if (to >= target) return
    }
  })
