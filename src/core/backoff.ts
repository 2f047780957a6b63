/**
 * Crash backoff: after a failed start, the next start waits an exponentially growing, jittered delay
 * (a Schedule: from `initial`, doubling, capped at `max`); a good run resets it.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"

/** Where the backoff stands. */
export interface BackoffState {
  /** Failures in a row. */
  readonly failures: number
  /** The earliest time (Clock millis) the app may start again. */
  readonly notBefore: number
}

/** A backoff for one service. */
export interface Backoff {
  readonly state: Effect.Effect<BackoffState>
  /** Records a failure now; returns the new state. */
  readonly failed: Effect.Effect<BackoffState>
  /** Records a good run: the next failure starts from the initial delay again. */
  readonly reset: Effect.Effect<void>
}

/** The delays: exponential from `initial`, doubling, with jitter, capped at `max`. */
export const schedule = (initial: Duration.Duration, max: Duration.Duration) =>
  Schedule.exponential(initial, 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, delay) => Duration.min(delay, max))
  )

/** Makes a backoff. */
export const make = (initial: Duration.Duration, max: Duration.Duration): Effect.Effect<Backoff> =>
  Effect.gen(function*() {
    const policy = schedule(initial, max)
    const ref = yield* Ref.make({ step: policy.initial, failures: 0, notBefore: 0 })
    const failed = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const current = yield* Ref.get(ref)
      const [step, , decision] = yield* policy.step(now, undefined, current.step)
      const notBefore = ScheduleDecision.isContinue(decision) ? Math.ceil(Intervals.start(decision.intervals)) : now
      const next = { step, failures: current.failures + 1, notBefore }
      yield* Ref.set(ref, next)
      return { failures: next.failures, notBefore }
    })
    return {
      state: Ref.get(ref).pipe(Effect.map(({ failures, notBefore }) => ({ failures, notBefore }))),
      failed,
      reset: Ref.set(ref, { step: policy.initial, failures: 0, notBefore: 0 })
    }
  })
