import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { isoTime } from "../../src/observe/isoTime.js"

describe("isoTime", () => {
  it("writes what toISOString writes, for any time (property)", () => {
    fc.assert(
      fc.property(fc.date({ min: new Date(-8.64e15), max: new Date(8.64e15), noInvalidDate: true }), (date) => {
        expect(isoTime(date)).toBe(date.toISOString())
      }),
      { numRuns: 5_000 }
    )
  })

  it("pads each field: the first millisecond of year 1, and a time of single digits", () => {
    expect(isoTime(new Date("0001-01-01T00:00:00.000Z"))).toBe("0001-01-01T00:00:00.000Z")
    expect(isoTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe("2026-01-02T03:04:05.006Z")
    expect(isoTime(new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999)))).toBe("9999-12-31T23:59:59.999Z")
  })

  it("throws on an invalid date, as toISOString does", () => {
    expect(() => isoTime(new Date(Number.NaN))).toThrow(RangeError)
  })
})
