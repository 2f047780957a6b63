/**
 * The one rule per duration field that flags and config-file keys share: at least 1 ms once rounded, at most
 * 2147483647 ms (the longest timer), 0 only where it means something.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as Durations from "../../src/internal/durations.js"

const millis = (result: Either.Either<Duration.Duration, string>) =>
  Either.isRight(result) ? Duration.toMillis(result.right) : `refused: ${result.left}`

describe("durations: one rule per field for flags and the config file", () => {
  it.each([
    ["time-until-stop", 60, 60_000],
    ["time-until-stop", 0.001, 1],
    ["time-until-stop", 0.0005, 1], // rounds up to 1 ms
    ["max-backoff", 2147483.647, 2147483647],
    ["stop-timeout", 0, 0],
    ["min-uptime", 0, 0],
    ["min-warm", 0, 0],
    ["start-timeout", 1.5, 1500]
  ] as const)("%s = %s s is %s ms", (field, seconds, expected) => {
    expect(millis(Durations.validate(field, seconds))).toBe(expected)
  })

  it.each([
    ["max-backoff", 0.0001], // rounds to 0 ms: a crashing app would restart in a busy loop
    ["time-until-stop", 0.0004],
    ["stop-timeout", 0.0004], // 0 is allowed here, but a positive value that rounds to nothing is not
    ["time-until-stop", 0],
    ["start-timeout", 0],
    ["max-backoff", 0],
    ["time-until-stop", 2147483.648], // one ms more than a timer can hold
    ["min-warm", 1e10],
    ["stop-timeout", -1],
    ["min-uptime", Number.NaN],
    ["min-uptime", Number.POSITIVE_INFINITY]
  ] as const)("%s = %s s is refused, and the refusal says the bounds", (field, seconds) => {
    const result = Durations.validate(field, seconds)
    expect(Either.isLeft(result)).toBe(true)
    expect(Either.isLeft(result) ? result.left : "").toContain("from 0.001 (1 ms) to 2147483.647 (about 24.8 days)")
  })

  it("the text of a flag: a number of seconds, nothing else", () => {
    expect(millis(Durations.parse("time-until-stop", " 2.5 "))).toBe(2500)
    expect(Either.isLeft(Durations.parse("time-until-stop", ""))).toBe(true)
    expect(Either.isLeft(Durations.parse("time-until-stop", "abc"))).toBe(true)
    expect(Either.isLeft(Durations.parse("max-backoff", "0.0001"))).toBe(true)
  })

  it("says 0 is allowed exactly where it is", () => {
    expect(Durations.expected("stop-timeout")).toMatch(/^a non-negative number of seconds: 0, or from/)
    expect(Durations.expected("time-until-stop")).toMatch(/^a positive number of seconds, from/)
  })
})
