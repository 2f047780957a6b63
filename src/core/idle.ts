/**
 * When an app is idle: a pure decision from what soad sees at a look, and a Schedule that repeats the look after
 * the delay each decision asks for, until one says Idle. The Clock drives the delays (TestClock in tests), and no
 * timer runs between two looks but the one the decision asked for.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/** The idle rule of a service. */
export interface Rule {
  /** Idle time before the app is stopped (`-t`), in milliseconds. */
  readonly idleMillis: number
  /** How often open connections are looked at once the idle time has passed with some still open. */
  readonly recheckMillis: number
}

/** What soad sees at a look (Clock milliseconds). */
export interface Observation {
  readonly now: number
  /** The latest activity: the start, or the latest connection or byte seen. */
  readonly lastActivity: number
  /** A connection waits in the backlog: activity now, even if it was not seen arrive. */
  readonly pending: boolean
  /** Accepted connections still open (0 where they are ignored or cannot be seen). */
  readonly open: number
}

/** Idle for so long; or look again at `until`, with the activity as it stands then. */
export type Decision =
  | { readonly _tag: "Idle"; readonly idleFor: number }
  | {
    readonly _tag: "Wait"
    readonly at: number
    readonly until: number
    readonly lastActivity: number
    readonly open: number
  }

/** The decision: idle only when the idle time has passed since the last activity, nothing waits and none is open. */
export const decide = (rule: Rule, seen: Observation): Decision => {
  const wait = (until: number, lastActivity = seen.lastActivity, open = 0): Decision => ({
    _tag: "Wait",
    at: seen.now,
    until,
    lastActivity,
    open
  })
  const deadline = seen.lastActivity + rule.idleMillis
  if (seen.now < deadline) return wait(deadline)
  if (seen.pending) return wait(seen.now + rule.idleMillis, seen.now)
  if (seen.open > 0) return wait(seen.now + Math.min(rule.idleMillis, rule.recheckMillis), seen.lastActivity, seen.open)
  return { _tag: "Idle", idleFor: seen.now - seen.lastActivity }
}

/** Is the deadline still ahead, so that nothing needs to be read to know the app is not idle? */
export const beforeDeadline = (rule: Rule, now: number, lastActivity: number): boolean =>
  now < lastActivity + rule.idleMillis

/** Repeats a look after the delay its Wait asks for, while it waits; its output is the last decision (Idle). */
export const schedule: Schedule.Schedule<Decision, Decision> = Schedule.identity<Decision>().pipe(
  Schedule.whileInput((decision: Decision) => decision._tag === "Wait"),
  Schedule.addDelay((decision) => Duration.millis(decision._tag === "Wait" ? Math.max(0, decision.until - decision.at) : 0))
)

/** Looks until a look decides Idle; how long the app was idle then. */
export const untilIdle = <E, R>(look: Effect.Effect<Decision, E, R>): Effect.Effect<number, E, R> =>
  Effect.map(Effect.repeat(look, schedule), (decision) => decision._tag === "Idle" ? decision.idleFor : 0)
