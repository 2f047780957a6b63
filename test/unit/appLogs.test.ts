/**
 * The machinery of per-app logs, without processes: cutting a byte stream into lines (long ones into marked
 * pieces that never split a UTF-8 character) and the bounded ring of each service's latest lines.
 */
import { describe, expect, it } from "vitest"
import { type LogLine, Ring, splitter } from "../../src/internal/appLogs.js"

/** Feeds `chunks` to a splitter of `max` bytes; the pieces as [text, continued]. */
const split = (chunks: ReadonlyArray<Buffer | string>, max = 8, end = true): Array<[string, boolean]> => {
  const out: Array<[string, boolean]> = []
  const s = splitter((buffer, start, stop, continued) => out.push([buffer.toString("utf8", start, stop), continued]), max)
  for (const chunk of chunks) s.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk)
  if (end) s.end()
  return out
}

describe("splitter", () => {
  it("cuts at newlines, across chunks, and keeps a last line without its newline", () => {
    expect(split(["ab\ncd", "e\n\nf"])).toEqual([["ab", false], ["cde", false], ["", false], ["f", false]])
  })

  it("holds an unfinished line until its newline comes", () => {
    expect(split(["abc", "de"], 8, false)).toEqual([])
  })

  it("cuts a long line into pieces of at most max bytes, all but the last marked as continued", () => {
    expect(split(["0123456789abcdefXY\n"])).toEqual([["01234567", true], ["89abcdef", true], ["XY", false]])
    expect(split(["0123", "4567", "89\n"])).toEqual([["01234567", true], ["89", false]])
  })

  it("never splits a UTF-8 character between two pieces", () => {
    const pieces = split(["aaaaaaa€é€\n"]) // é is 2 bytes, € 3: the first cut falls inside €
    expect(pieces.map(([text]) => text).join("")).toBe("aaaaaaa€é€")
    expect(pieces.every(([text]) => !text.includes("\uFFFD"))).toBe(true)
    expect(pieces.every(([text]) => Buffer.byteLength(text) <= 8)).toBe(true)
  })

  it("replaces bytes that are not UTF-8 with U+FFFD and keeps the framing", () => {
    expect(split([Buffer.from([0x61, 0xff, 0x0a, 0xfe, 0x62, 0x0a])])).toEqual([["a\uFFFD", false], ["\uFFFDb", false]])
  })

  it("keeps no more than max bytes of an unfinished line, however much comes without a newline", () => {
    const pieces = split([Buffer.alloc(100, "z")], 8, false)
    expect(pieces).toHaveLength(12)
    expect(pieces.every(([text, continued]) => text.length === 8 && continued)).toBe(true)
  })
})

const line = (text: string): LogLine => ({ time: 0, stream: "stdout", pid: 1, line: text, continued: false, bytes: text.length })

describe("Ring", () => {
  it("keeps the latest lines up to its line bound, oldest first", () => {
    const ring = new Ring(3, 1000)
    for (const text of ["a", "b", "c", "d", "e"]) ring.push(line(text))
    expect(ring.tail(10).map((l) => l.line)).toEqual(["c", "d", "e"])
    expect(ring.tail(2).map((l) => l.line)).toEqual(["d", "e"])
    expect(ring.tail(0)).toEqual([])
  })

  it("forgets the oldest lines beyond its byte bound, but always keeps the newest", () => {
    const ring = new Ring(100, 10)
    for (const text of ["aaaa", "bbbb", "cccc"]) ring.push(line(text))
    expect(ring.tail(10).map((l) => l.line)).toEqual(["bbbb", "cccc"])
    ring.push(line("x".repeat(50)))
    expect(ring.tail(10).map((l) => l.line)).toEqual(["x".repeat(50)])
  })
})
