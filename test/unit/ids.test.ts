import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as Ids from "../../src/config/ids.js"

describe("user and group ids", () => {
  it("accepts whole numbers 0..4294967294, as numbers or digits, and names", () => {
    expect(Ids.parse(0)).toEqual(Either.right(0))
    expect(Ids.parse(4294967294)).toEqual(Either.right(4294967294))
    expect(Ids.parse("2147483648")).toEqual(Either.right(2147483648))
    expect(Ids.parse("65534")).toEqual(Either.right(65534))
    expect(Ids.parse("www-data")).toEqual(Either.right("www-data"))
    expect(Ids.parse("_apt")).toEqual(Either.right("_apt"))
  })

  it("refuses what would wrap, truncate or mean 'no change' in C", () => {
    for (const bad of [-1, 4294967295, 1.5, 1e10, Number.NaN, Infinity, "-1", "4294967295", "1.5", "1e10", "0x10", "+5", "", " "]) {
      expect(Either.isLeft(Ids.parse(bad)), String(bad)).toBe(true)
    }
  })
})
