/**
 * The one rule per duration field that flags and config-file keys share: at least 1 ms once rounded, at most
 * 2147483647 ms (the longest timer), 0 only where it means something.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as Durations from "../../src/config/durations.js"

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

  it("the text of a flag or a key: seconds, or a number with units", () => {
    expect(millis(Durations.parse("time-until-stop", " 2.5 "))).toBe(2500)
    expect(millis(Durations.parse("time-until-stop", 2.5))).toBe(2500)
    expect(Either.isLeft(Durations.parse("time-until-stop", ""))).toBe(true)
    expect(Either.isLeft(Durations.parse("time-until-stop", "abc"))).toBe(true)
    expect(Either.isLeft(Durations.parse("max-backoff", "0.0001"))).toBe(true)
  })

  it.each([
    ["90", 90_000],
    [".5", 500],
    ["90s", 90_000],
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["250ms", 250],
    ["1m30s", 90_000],
    ["1.5h", 5_400_000],
    ["1d", 86_400_000],
    ["2m500ms", 120_500],
    [" 5m ", 300_000]
  ] as const)("%j is %s ms", (text, expected) => {
    expect(Durations.seconds(text)).toBeCloseTo(expected / 1000, 9)
    expect(millis(Durations.parse("time-until-stop", text))).toBe(expected)
  })

  it.each(["5 m", "5M", "m", "s", "1s1h", "1m1m", "5min", "-5s", "1e3", "0x10", "+5", "Infinity", "1h 30m", "90sec", "."])(
    "%j is no duration",
    (text) => {
      expect(Durations.seconds(text)).toBeUndefined()
      expect(Either.isLeft(Durations.parse("stop-timeout", text))).toBe(true)
    }
  )

  it("units keep the bounds: 0ms only where 0 is allowed, at most 2147483647 ms", () => {
    expect(millis(Durations.parse("stop-timeout", "0s"))).toBe(0)
    expect(Either.isLeft(Durations.parse("time-until-stop", "0s"))).toBe(true)
    expect(millis(Durations.parse("time-until-stop", "24d20h31m23s647ms"))).toBe(2_147_483_647)
    expect(Either.isLeft(Durations.parse("time-until-stop", "25d"))).toBe(true)
  })

  it("says 0 is allowed exactly where it is, and that units are", () => {
    expect(Durations.expected("stop-timeout")).toMatch(
      /^a non-negative number of seconds or a duration such as 90s, 5m, 1h30m, 250ms: 0, or from/
    )
    expect(Durations.expected("time-until-stop")).toMatch(
      /^a positive number of seconds or a duration such as 90s, 5m, 1h30m, 250ms, from/
    )
  })
})
