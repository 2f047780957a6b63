/**
 * Deterministic time for tests of soad's services, under TestClock (`it.effect`/`it.scoped` of @effect/vitest, or
 * `TestContext.TestContext`). Part of `soad/testing`.
 *
 * TestClock.adjust moves time to each pending sleep in turn, but between two sleeps it cannot reliably tell
 * whether a woken fiber has already registered its next one (in Effect 3 it only sees fibers listed in a test
 * annotation, and a woken fiber still shows as suspended until the scheduler runs it). So the code under test
 * runs `supervised`, and `settle` runs real event-loop turns (no test time passes) until none of its fibers
 * has run for two turns (a supervisor hears each start, resume and suspension: reading each fiber's status
 * instead cost a turn per fiber, as the fiber answers on its scheduler). `advance` then moves the clock one sleep
 * at a time, settling after each. A plain jump of 60 seconds may instead pass a deadline the code had not yet set, and
 * the test then sees a stop late, or not at all.
 *
 * The clock `advance` moves is the harness's own (`SteppedClock`), not TestClock's: TestClock.adjust waits for
 * real timers (setTimeout(0), several per adjust and again after each sleep it wakes: about 8 ms of real time)
 * before it moves, and a lifecycle test wakes hundreds of sleeps. `supervised` and `advance` put it in place of
 * the test's TestClock, starting at its time, as the Clock of the fiber that calls them (so the test's own
 * reads of the time, a fake's `world.connect` say, see it) and of every fiber that one forks from then on; one
 * test has one, whichever fiber installs it. It is a TestClock too: `TestClock.currentTimeMillis` reads it, and
 * `TestClock.adjust` moves it as `advance` does.
 *
 * The supervised code runs its fibers' turns on immediates (one real event-loop turn runs all that was due, in
 * well under a millisecond) rather than on Effect's default setTimeout(0) (at least 1 ms each): a test of a
 * lifecycle settles thousands of times.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Scheduler from "effect/Scheduler"
import * as Supervisor from "effect/Supervisor"
import type * as TestClock from "effect/TestClock"

/** Counts what the supervised fibers do: each start and end, each resume and suspension of any of them. */
class Activity extends Supervisor.AbstractSupervisor<void> {
  count = 0
  readonly value: Effect.Effect<void> = Effect.void
  override onStart(): void {
    this.count++
  }
  override onEnd(): void {
    this.count++
  }
  override onResume(): void {
    this.count++
  }
  override onSuspend(): void {
    this.count++
  }
}

const activity = new Activity()

/**
 * Runs `effect` with its fibers (and their children, forked ones too) watched by `settle`, on immediates, and on
 * the harness's clock (which from then on is the calling fiber's Clock too). Wrap the code under test in it
 * (`Activator.start(config).pipe(supervised)`); the test's own fiber stays outside.
 */
export const supervised = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.zipRight(install, Effect.supervised(effect, activity)).pipe(Effect.withScheduler(scheduler))

/**
 * The code under test runs its fibers' turns on immediates, not on Effect's default timers (setTimeout(0) waits at
 * least 1 ms): one real turn of the event loop, `turn`, then runs everything that was due, in well under a ms.
 */
const scheduler = Scheduler.makeBatched((runBatch) => setImmediate(runBatch))

/** One real turn of the event loop: what the fibers scheduled, and the I/O callbacks due. */
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * Lets every supervised fiber run until it waits on something (a sleep, a callback of the fakes), with no test time
 * passing: after a `world.connect`, say, soad has started the app once `settle` returns. Done when none of them has
 * started, resumed or ended for two real turns of the event loop (at most 200 turns).
 */
export const settle: Effect.Effect<void> = Effect.gen(function*() {
  let stable = 0
  let last = -1
  for (let i = 0; i < 200 && stable < 2; i++) {
    yield* turn
    stable = activity.count === last ? stable + 1 : 0
    last = activity.count
  }
})

/** A fiber asleep on the harness's clock: when it wakes, and how. */
interface Sleeper {
  readonly at: number
  readonly wake: () => void
}

/**
 * The harness's clock: its time moves only in `adjust` (what `advance` runs), which wakes each sleep due on the
 * way, in order of its instant (then of its start), at that instant, and settles after each. No real time passes
 * in it but the event-loop turns of `settle`. A TestClock, so that TestClock's accessors work on it.
 */
class SteppedClock implements TestClock.TestClock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  /** By `at`, those due at the same instant in the order they began. */
  private sleepers: Array<Sleeper> = []

  constructor(private now: number) {}

  unsafeCurrentTimeMillis(): number {
    return this.now
  }

  unsafeCurrentTimeNanos(): bigint {
    return BigInt(Math.floor(this.now * 1_000_000))
  }

  readonly currentTimeMillis: Effect.Effect<number> = Effect.sync(() => this.unsafeCurrentTimeMillis())

  readonly currentTimeNanos: Effect.Effect<bigint> = Effect.sync(() => this.unsafeCurrentTimeNanos())

  /** Sleeps until the clock reaches now + duration (no wait for a duration of 0); an interrupted sleep is dropped. */
  sleep(duration: Duration.Duration): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const at = this.now + Duration.toMillis(duration)
      if (!(at > this.now)) return resume(Effect.void)
      let woken = false
      const sleeper: Sleeper = {
        at,
        wake: () => {
          if (woken) return
          woken = true
          resume(Effect.void)
        }
      }
      const index = this.sleepers.findIndex((other) => other.at > at)
      this.sleepers.splice(index === -1 ? this.sleepers.length : index, 0, sleeper)
      return Effect.sync(() => this.drop(sleeper))
    })
  }

  private drop(sleeper: Sleeper): void {
    const index = this.sleepers.indexOf(sleeper)
    if (index !== -1) this.sleepers.splice(index, 1)
  }

  /** Moves the time to `target`, waking each sleep due on the way at its instant and settling after each. */
  private moveTo(target: number): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      yield* settle
      for (;;) {
        const next = this.sleepers[0]
        if (next === undefined || next.at > target) break
        this.sleepers.shift()
        this.now = Math.max(this.now, next.at)
        next.wake()
        yield* settle
      }
      if (target > this.now) {
        this.now = target
        yield* settle
      }
    })
  }

  adjust(duration: Duration.DurationInput): Effect.Effect<void> {
    return Effect.suspend(() => this.moveTo(this.now + Duration.toMillis(duration)))
  }

  adjustWith(duration: Duration.DurationInput): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> {
    return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.zipLeft(effect, this.adjust(duration), { concurrent: true })
  }

  /** Sets the time; forward, as `adjust` does; backward (as TestClock allows), with nothing woken. */
  setTime(time: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (time >= this.now) return this.moveTo(time)
      this.now = time
      return Effect.void
    })
  }

  readonly save: Effect.Effect<Effect.Effect<void>> = Effect.sync(() => {
    const now = this.now
    const sleepers = [...this.sleepers]
    return Effect.sync(() => {
      this.now = now
      this.sleepers = sleepers
    })
  })

  readonly sleeps: Effect.Effect<Chunk.Chunk<number>> = Effect.sync(() =>
    Chunk.fromIterable(this.sleepers.map((sleeper) => sleeper.at))
  )
}

/** Each test's harness clock, by the clock it replaces (the test's TestClock). */
const clocks = new WeakMap<Clock.Clock, SteppedClock>()

/**
 * The test's harness clock, made the Clock of the calling fiber (and of all it forks from now on) if it is not
 * already: it starts at the time of the clock it replaces.
 */
const install: Effect.Effect<SteppedClock> = Effect.flatMap(FiberRef.get(DefaultServices.currentServices), (services) => {
  const current = Context.get(services, Clock.Clock)
  if (current instanceof SteppedClock) return Effect.succeed(current)
  let clock = clocks.get(current)
  if (clock === undefined) {
    clock = new SteppedClock(current.unsafeCurrentTimeMillis())
    clocks.set(current, clock)
  }
  return Effect.as(FiberRef.set(DefaultServices.currentServices, Context.add(services, Clock.Clock, clock)), clock)
})

/**
 * Moves the test's time forward by `duration` (the harness's clock, see the module), waking each sleep due on the
 * way in order and settling after each: what soad does at each moment happens at that moment, as with real time.
 */
export const advance = (duration: Duration.DurationInput): Effect.Effect<void> =>
  Effect.flatMap(install, (clock) => clock.adjust(duration))
