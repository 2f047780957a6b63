/**
 * One parser per field that is both a flag and a config-file key (config/fields.ts): the CLI and the config file
 * call the same function, so they accept and refuse the same values; only the wording around the value differs.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Fields from "../../src/config/fields.js"

const refusal = <A>(result: Either.Either<A, Fields.Refusal>) => (Either.isLeft(result) ? result.left : undefined)

describe("fields shared by flags and config keys", () => {
  it("durations: seconds or units, from the flag's text or the file's number or string", () => {
    const parse = Fields.duration("time-until-stop")
    expect(Either.map(parse("5m"), Duration.toMillis)).toEqual(Either.right(300_000))
    expect(Either.map(parse(300), Duration.toMillis)).toEqual(Either.right(300_000))
    expect(refusal(parse(0))?._tag).toBe("Expected")
    // The two wordings of one refusal.
    const refused = refusal(parse("soon"))!
    expect(Fields.flagMessage("-t", "soon", refused)).toMatch(/^-t: 'soon' is not a positive number of seconds or a duration/)
    expect(Fields.keyMessage("services.a.time-until-stop", "soon", refused)).toMatch(
      /^services\.a\.time-until-stop: expected a positive number of seconds .*, found "soon"$/
    )
  })

  it("signals: a name in any case, with or without SIG, or a number; the refusal names the value", () => {
    expect(Either.map(Fields.signal("int"), (s) => s.name)).toEqual(Either.right("SIGINT"))
    expect(Either.map(Fields.signal(15), (s) => s.name)).toEqual(Either.right("SIGTERM"))
    expect(Either.map(Fields.signal("SIGQUIT"), (s) => s.name)).toEqual(Either.right("SIGQUIT"))
    const refused = refusal(Fields.signal("FOO"))!
    expect(Fields.flagMessage("-S", "FOO", refused)).toBe(
      "-S: unknown signal 'FOO': use a name such as TERM, INT, QUIT, HUP or a number such as 15"
    )
    expect(refusal(Fields.signal(99))).toEqual({ _tag: "Invalid", message: "unknown signal number 99" })
  })

  it("socket mode: octal text (660, 0660, 0o660) or a number up to 0o777", () => {
    for (const text of ["660", "0660", "0o660"]) expect(Fields.socketMode(text)).toEqual(Either.right(0o660))
    expect(Fields.socketMode(0o600)).toEqual(Either.right(0o600))
    for (const bad of ["999", "66", "06600", "rw-rw----", 0o1000, -1, 1.5]) {
      expect(refusal(Fields.socketMode(bad)), String(bad)).toEqual({ _tag: "Expected", expected: Fields.socketModeExpected })
    }
  })

  it("counts (backlog, max-held, max-running): whole numbers 1 or more", () => {
    expect(Fields.count(64)).toEqual(Either.right(64))
    expect(Fields.count("64")).toEqual(Either.right(64))
    for (const bad of [0, -1, 1.5, "0", "x", "", "1e3", 2 ** 31]) {
      expect(Either.isLeft(Fields.count(bad)), String(bad)).toBe(true)
    }
    expect(Fields.keyMessage("services.a.backlog", 0, refusal(Fields.count(0))!)).toBe(
      "services.a.backlog: expected a whole number, 1 or more, found 0"
    )
  })

  it("rates (max-accept-rate): N/DURATION, N a count, DURATION every duration form or a bare unit", () => {
    const rate = (input: string | number) => Either.map(Fields.rate(input), (r) => [r.count, Duration.toMillis(r.per)])
    expect(rate("50/1s")).toEqual(Either.right([50, 1000]))
    expect(rate("50/s")).toEqual(Either.right([50, 1000]))
    expect(rate(" 600 / 1m ")).toEqual(Either.right([600, 60_000]))
    expect(rate("3/0.5")).toEqual(Either.right([3, 500]))
    expect(rate("1/1h30m")).toEqual(Either.right([1, 5_400_000]))
    expect(rate("200/2s")).toEqual(Either.right([200, 2000]))
    for (const bad of ["50", "50/", "/1s", "0/1s", "-1/1s", "1.5/1s", "50/0", "50/0s", "50/0.0001", "50/soon", "50/1s/2", "50/30d", 50]) {
      expect(refusal(Fields.rate(bad)), String(bad)).toEqual({ _tag: "Expected", expected: Fields.rateExpected })
    }
    expect(Fields.keyMessage("services.a.max-accept-rate", "fast", refusal(Fields.rate("fast"))!)).toBe(
      `services.a.max-accept-rate: expected ${Fields.rateExpected}, found "fast"`
    )
  })

  it("rates: any text is refused or gives a rate within bounds; every rate written N/MSms reads back as itself", () => {
    const pieces = fc.constantFrom("/", "s", "ms", "m", "h", "d", ".", " ", "0", "1", "9", "e", "-", "x")
    const texts = fc.oneof(fc.string(), fc.array(pieces, { maxLength: 40 }).map((parts) => parts.join("")))
    fc.assert(fc.property(texts, (text) => {
      const parsed = Fields.rate(text)
      if (Either.isLeft(parsed)) return parsed.left._tag === "Expected"
      const millis = Duration.toMillis(parsed.right.per)
      return Number.isInteger(parsed.right.count) && parsed.right.count >= 1 && millis >= 1 && millis <= 2_147_483_647
    }), { numRuns: 2000 })
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (count, ms) => {
      const parsed = Fields.rate(`${count}/${ms}ms`)
      return Either.isRight(parsed) && parsed.right.count === count && Duration.toMillis(parsed.right.per) === ms
    }))
    // Adversarial: a long run of digits or spaces is read in linear time, and refused or taken as it should be.
    expect(Either.isLeft(Fields.rate("1".repeat(100_000) + "/1s"))).toBe(true)
    expect(Either.isLeft(Fields.rate("1/" + " ".repeat(100_000) + "x"))).toBe(true)
  })

  it("addresses: sockets, listeners, upstreams, relative to the directory given", () => {
    expect(Fields.socket("/srv")("app.sock")).toEqual(Either.right({ _tag: "Unix", path: "/srv/app.sock" }))
    expect(Fields.listener("/srv")("http=127.0.0.1:80")).toEqual(
      Either.right({ name: "http", address: { _tag: "Tcp", host: "127.0.0.1", port: 80 } })
    )
    expect(Fields.upstream("/srv")("auto")).toEqual(Either.right({ _tag: "Auto" }))
    expect(Fields.flagMessage("-l", "nonsense", refusal(Fields.listener("/")("nonsense"))!)).toMatch(
      /^-l: 'nonsense' is not an address/
    )
  })
})
