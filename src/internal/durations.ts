/**
 * The durations soad takes, in seconds, as flags and as config-file keys: one rule per field, shared by both, so
 * they cannot drift. A positive duration is at least 1 ms once rounded to milliseconds (less would be a busy loop)
 * and at most 2147483647 ms, about 24.8 days: the longest timer Node (setTimeout) and Effect's sleep can hold;
 * beyond it a timer fires at once.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"

/** The longest duration a timer can hold, in milliseconds (2^31 - 1). */
export const maxMillis = 2_147_483_647

/** The duration fields, by their flag and key name. */
export type Field = "time-until-stop" | "stop-timeout" | "start-timeout" | "min-uptime" | "max-backoff" | "min-warm"

/** Fields where 0 means something (stop at once with SIGKILL, never a crash, no warm-up): 0 is allowed there. */
const zeroAllowed: Readonly<Record<Field, boolean>> = {
  "time-until-stop": false,
  "stop-timeout": true,
  "start-timeout": false,
  "min-uptime": true,
  "max-backoff": false,
  "min-warm": true
}

const range = `from 0.001 (1 ms) to ${maxMillis / 1000} (about 24.8 days)`

/** What `field` takes, as the end of "expected …" or "is not …". */
export const expected = (field: Field): string =>
  zeroAllowed[field] ? `a non-negative number of seconds: 0, or ${range}` : `a positive number of seconds, ${range}`

/** A number of seconds for `field` as a Duration (rounded to milliseconds), or what was expected. */
export const validate = (field: Field, seconds: number): Either.Either<Duration.Duration, string> => {
  if (!Number.isFinite(seconds)) return Either.left(expected(field))
  if (seconds === 0 && zeroAllowed[field]) return Either.right(Duration.zero)
  const millis = Math.round(seconds * 1000)
  return millis >= 1 && millis <= maxMillis ? Either.right(Duration.millis(millis)) : Either.left(expected(field))
}

/** The text of a flag's value for `field` (a number of seconds) as a Duration, or what was expected. */
export const parse = (field: Field, text: string): Either.Either<Duration.Duration, string> =>
  text.trim() === "" ? Either.left(expected(field)) : validate(field, Number(text))
