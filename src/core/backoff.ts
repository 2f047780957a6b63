/**
 * Crash backoff and the start limit. After a failed start, the next start waits an exponentially growing,
 * jittered delay (a Schedule: from `initial`, doubling, capped at `max`); a good run resets it. And as systemd's
 * StartLimitBurst=/StartLimitIntervalSec=: `burst` failed starts within `interval` and the service gives up (it is
 * `failed`: what waits is refused) until it is reset by hand (`soad wake`, `restart`) or by a reload.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as MutableRef from "effect/MutableRef"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import * as Monotonic from "./monotonic.js"

/** Where the backoff stands. */
export interface BackoffState {
  /** Failures in a row. */
  readonly failures: number
  /** The earliest time (Clock millis) the app may start again. */
  readonly notBefore: number
  /** The start limit was reached: the service is failed until reset. */
  readonly gaveUp: boolean
}

/** The start limit: `burst` failed starts within `interval`; a burst of 0 never gives up. */
export interface StartLimit {
  readonly burst: number
  readonly interval: Duration.Duration
}

/** A backoff for one service. */
export interface Backoff {
  readonly state: Effect.Effect<BackoffState>
  /** The same, read at once (a status of 1,000 services reads each without an effect of its own). */
  readonly current: () => BackoffState
  /** Records a failure now; returns the new state. */
  readonly failed: Effect.Effect<BackoffState>
  /** Records a good run, or a reset by hand: the next failure starts from the initial delay, and no limit is reached. */
  readonly reset: Effect.Effect<void>
  /** Gives up at once (the service can never start as configured): failed until reset. */
  readonly giveUp: Effect.Effect<void>
}

/** The delays: exponential from `initial`, doubling, with jitter, capped at `max`. */
export const schedule = (initial: Duration.Duration, max: Duration.Duration) =>
  Schedule.exponential(initial, 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, delay) => Duration.min(delay, max))
  )

/** One schedule per pair of delays, shared: with 1,000 services, most have the same. */
const schedules = new Map<string, ReturnType<typeof schedule>>()
const shared = (initial: Duration.Duration, max: Duration.Duration) => {
  const key = `${Duration.toMillis(initial)}/${Duration.toMillis(max)}`
  let found = schedules.get(key)
  if (found === undefined) {
    found = schedule(initial, max)
    schedules.set(key, found)
  }
  return found
}

interface Internal {
  readonly step: unknown
  readonly failures: number
  readonly notBefore: number
  /** Clock ms of the failed starts within the limit's interval, oldest first. */
  readonly recent: ReadonlyArray<number>
  readonly gaveUp: boolean
}

/** A backoff's settings: its delays and its start limit (none: retry for ever). */
export interface Settings {
  readonly initial: Duration.Duration
  readonly max: Duration.Duration
  readonly limit?: StartLimit | undefined
}

/**
 * Makes a backoff. `settings` (or a function giving them) is read at each failure, so a reload that changes
 * `max-backoff` or the start limit applies from the next failure on.
 */
export const make = (settings: Settings | (() => Settings)): Effect.Effect<Backoff> =>
  Effect.suspend(() => {
    const read = typeof settings === "function" ? settings : () => settings
    const start = read()
    const fresh: Internal = { step: shared(start.initial, start.max).initial, failures: 0, notBefore: 0, recent: [], gaveUp: false }
    return Effect.succeed(new Live(read, fresh, MutableRef.make(fresh)))
  })

/**
 * A backoff's effects are made when asked for, by getters on the class (shared by every instance): with 1,000
 * services, effects kept per service add up, and getters in an object literal give each object a dictionary of
 * its properties (448 bytes).
 */
class Live implements Backoff {
  constructor(readonly read: () => Settings, readonly fresh: Internal, readonly ref: MutableRef.MutableRef<Internal>) {}
  current(): BackoffState {
    const { failures, gaveUp, notBefore } = MutableRef.get(this.ref)
    return { failures, notBefore, gaveUp }
  }
  get state(): Effect.Effect<BackoffState> {
    return Effect.sync(() => this.current())
  }
  get failed(): Effect.Effect<BackoffState> {
    const { read, ref } = this
    return Effect.gen(function*() {
      const { initial, limit, max } = read()
      const policy = shared(initial, max)
      const intervalMs = limit === undefined ? 0 : Duration.toMillis(limit.interval)
      const now = yield* Monotonic.now
      const current = MutableRef.get(ref)
      const [step, , decision] = yield* policy.step(now, undefined, current.step as never)
      const notBefore = ScheduleDecision.isContinue(decision) ? Math.ceil(Intervals.start(decision.intervals)) : now
      const recent = limit === undefined || limit.burst === 0
        ? []
        : [...current.recent.filter((at) => at > now - intervalMs), now]
      const gaveUp = current.gaveUp || (limit !== undefined && limit.burst > 0 && recent.length >= limit.burst)
      const next: Internal = { step, failures: current.failures + 1, notBefore, recent, gaveUp }
      MutableRef.set(ref, next)
      return { failures: next.failures, notBefore, gaveUp }
    })
  }
  get reset(): Effect.Effect<void> {
    return Effect.sync(() => MutableRef.set(this.ref, this.fresh))
  }
  get giveUp(): Effect.Effect<void> {
    return Effect.sync(() => MutableRef.update(this.ref, (current) => ({ ...current, gaveUp: true })))
  }
}
