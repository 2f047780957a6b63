/**
 * The durations soad takes, as flags and as config-file keys: one rule per field, shared by both, so they cannot
 * drift. A duration is a number of seconds (`90`, `0.5`) or a number with units (`90s`, `5m`, `1h30m`, `250ms`,
 * `1d`). A positive duration is at least 1 ms once rounded to milliseconds (less would be a busy loop) and at most
 * 2147483647 ms, about 24.8 days: the longest timer Node (setTimeout) and Effect's sleep can hold; beyond it a timer
 * fires at once.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"

/** The longest duration a timer can hold, in milliseconds (2^31 - 1). */
export const maxMillis = 2_147_483_647

/** The duration fields, by their flag and key name. */
export type Field =
  | "time-until-stop"
  | "stop-timeout"
  | "start-timeout"
  | "min-uptime"
  | "max-backoff"
  | "min-warm"
  | "waiting-page"
  | "start-limit-interval"

/** Fields where 0 means something (stop at once with SIGKILL, never a crash, no warm-up): 0 is allowed there. */
const zeroAllowed: Readonly<Record<Field, boolean>> = {
  "time-until-stop": false,
  "stop-timeout": true,
  "start-timeout": false,
  "min-uptime": true,
  "max-backoff": false,
  "min-warm": true,
  "waiting-page": false,
  "start-limit-interval": false
}

const forms = "or a duration such as 90s, 5m, 1h30m, 250ms"
const range = `from 0.001 (1 ms) to ${maxMillis / 1000} (about 24.8 days)`

/** What `field` takes, as the end of "expected …" or "is not …". */
export const expected = (field: Field): string =>
  zeroAllowed[field]
    ? `a non-negative number of seconds ${forms}: 0, or ${range}`
    : `a positive number of seconds ${forms}, ${range}`

/** A number of seconds for `field` as a Duration (rounded to milliseconds), or what was expected. */
export const validate = (field: Field, seconds: number): Either.Either<Duration.Duration, string> => {
  if (!Number.isFinite(seconds)) return Either.left(expected(field))
  if (seconds === 0 && zeroAllowed[field]) return Either.right(Duration.zero)
  const millis = Math.round(seconds * 1000)
  return millis >= 1 && millis <= maxMillis ? Either.right(Duration.millis(millis)) : Either.left(expected(field))
}

/** Seconds per unit; `m` is minutes, `ms` milliseconds. */
const unitSeconds: Readonly<Record<string, number>> = { d: 86_400, h: 3_600, m: 60, s: 1, ms: 0.001 }

/** `1h30m`, `90s`, `250ms`, `1.5h`: one or more number-unit pairs, each unit at most once, largest first. */
const withUnits = /^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/

/** A plain number of seconds: digits with an optional fraction (no sign, exponent or hex). */
const plainSeconds = /^\d+(?:\.\d+)?$|^\.\d+$/

/** The seconds a text means (`90`, `0.5`, `5m`, `1h30m`, `250ms`), or undefined if it is no duration. */
export const seconds = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (plainSeconds.test(trimmed)) return Number(trimmed)
  const match = trimmed === "" ? null : withUnits.exec(trimmed)
  if (match === null) return undefined
  const [, d, h, m, s, ms] = match
  return [[d, "d"], [h, "h"], [m, "m"], [s, "s"], [ms, "ms"]].reduce(
    (sum, [value, unit]) => (value === undefined ? sum : sum + Number(value) * unitSeconds[unit!]!),
    0
  )
}

/** A flag's text or a config-file value (a number of seconds, or text as `seconds` reads it) for `field`. */
export const parse = (field: Field, input: string | number): Either.Either<Duration.Duration, string> => {
  const value = typeof input === "number" ? input : seconds(input)
  return value === undefined ? Either.left(expected(field)) : validate(field, value)
}
