/**
 * A control socket's request, as soad reads it from a peer: one line, read chunk by chunk with each byte looked at
 * once, at most 4 KiB kept; then parsed as JSON (a line with more than 16 brackets is no request, before JSON.parse
 * walks its nesting).
 */
import * as fc from "fast-check"
import { describe, expect, it, vi } from "vitest"
import { lineReader, maxRequestBytes, parseRequest, type Read } from "../../src/observe/controlRequest.js"

/** Feeds `bytes` cut at `cuts` (sorted offsets) to a reader until it answers; its answer. */
const readAll = (bytes: Buffer, cuts: ReadonlyArray<number>, max = maxRequestBytes): Read => {
  const read = lineReader(max)
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    if (cut < from) continue
    const got = read(bytes.subarray(from, cut))
    if (got._tag !== "More") return got
    from = cut
  }
  return { _tag: "More" }
}

/** What the reader must answer for these bytes, whatever their chunks: the reference model. */
const expected = (bytes: Buffer, max: number): Read => {
  const newline = bytes.indexOf(10)
  if (newline < 0) return bytes.length > max ? { _tag: "TooLong" } : { _tag: "More" }
  return newline > max ? { _tag: "TooLong" } : { _tag: "Line", line: bytes.subarray(0, newline).toString("utf8") }
}

/** Bytes biased to requests, newlines, NUL, CR and bytes that are not UTF-8 (split multibyte characters too). */
const peerBytes = fc.array(
  fc.oneof(
    fc.constantFrom("{\"command\":\"status\"}", "\n", "\r", "\u0000", "é", "€", "[", "{", "\"", "x".repeat(100)).map((s) => Buffer.from(s)),
    fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a))
  ),
  { maxLength: 40 }
).map((parts) => Buffer.concat(parts))

const withCuts = peerBytes.chain((bytes) =>
  fc.tuple(fc.constant(bytes), fc.uniqueArray(fc.nat({ max: Math.max(0, bytes.length) }), { maxLength: 10 }).map((c) => c.sort((a, b) => a - b)))
)

describe("the request line", () => {
  it("is the same whatever the chunks: the line, More, or TooLong past the limit (the reference model)", () => {
    fc.assert(
      fc.property(withCuts, fc.integer({ min: 1, max: 300 }), ([bytes, cuts], max) => {
        expect(readAll(bytes, cuts, max)).toEqual(expected(bytes, max))
      }),
      { numRuns: 3000 }
    )
  })

  it("searches each chunk once for its newline, never what came before: work in proportion to the bytes", () => {
    // Fault: each chunk was appended to a string and the whole string searched again: a peer sending its line a
    // byte at a time made soad search 1 + 2 + … + n bytes.
    const indexOf = vi.spyOn(Buffer.prototype, "indexOf")
    try {
      fc.assert(
        fc.property(withCuts, ([bytes, cuts]) => {
          indexOf.mockClear()
          readAll(bytes, cuts)
          const searched = indexOf.mock.contexts.reduce((sum: number, chunk) => sum + (chunk as Buffer).length, 0)
          expect(searched).toBeLessThanOrEqual(bytes.length)
        }),
        { numRuns: 500 }
      )
      // A request at the limit, a byte at a time, then its newline.
      indexOf.mockClear()
      const read = lineReader()
      const request = Buffer.from(`{"command":"status","pad":"${"x".repeat(maxRequestBytes - 32)}"}\n`)
      expect(request.length).toBeLessThanOrEqual(maxRequestBytes + 1)
      let got: Read = { _tag: "More" }
      for (let i = 0; i < request.length && got._tag === "More"; i++) got = read(request.subarray(i, i + 1))
      expect(got._tag).toBe("Line")
      expect(indexOf.mock.contexts.reduce((sum: number, chunk) => sum + (chunk as Buffer).length, 0)).toBe(request.length)
    } finally {
      indexOf.mockRestore()
    }
  })

  it("keeps at most the limit: a longer line is refused, with or without its newline in the same chunk", () => {
    const long = Buffer.from(`{"command":"status","pad":"${"x".repeat(maxRequestBytes)}"}\n`)
    expect(readAll(long, [])).toEqual({ _tag: "TooLong" })
    expect(readAll(long, [100, 2000])).toEqual({ _tag: "TooLong" })
    expect(readAll(Buffer.alloc(1 << 20, "x"), [])).toEqual({ _tag: "TooLong" })
    const exact = Buffer.concat([Buffer.alloc(maxRequestBytes, "x"), Buffer.from("\n")])
    expect(readAll(exact, [])).toEqual({ _tag: "Line", line: "x".repeat(maxRequestBytes) })
  })
})

describe("the request", () => {
  /** Service names as they are (letters, digits, `_.-`), and any short string. */
  const services = fc.oneof(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/), fc.string({ maxLength: 15 }))
  it("status, wake, sleep, restart, reload and logs (of one service or every one) as the clients send them", () => {
    fc.assert(
      fc.property(services, fc.option(fc.nat()), fc.boolean(), (service, lines, follow) => {
        expect(parseRequest(JSON.stringify({ command: "status" }))).toEqual({ command: "status" })
        expect(parseRequest(JSON.stringify({ command: "wake", service }))).toEqual({ command: "wake", service })
        expect(parseRequest(JSON.stringify({ command: "sleep", service }))).toEqual({ command: "sleep", service })
        expect(parseRequest(JSON.stringify({ command: "logs", service, lines: lines ?? undefined, follow })))
          .toEqual({ command: "logs", service, lines: lines ?? 10, follow })
        expect(parseRequest(JSON.stringify({ command: "restart", service }))).toEqual({ command: "restart", service })
        expect(parseRequest(JSON.stringify({ command: "reload" }))).toEqual({ command: "reload" })
        expect(parseRequest(JSON.stringify({ command: "logs", lines: lines ?? undefined, follow })))
          .toEqual({ command: "logs", lines: lines ?? 10, follow })
      })
    )
  })

  it("anything else is none, never an exception: nesting, long strings, NUL, bytes that are not UTF-8", () => {
    const n = maxRequestBytes
    const adversarial = [
      "[".repeat(n), "[".repeat(n / 2) + "]".repeat(n / 2), "{\"a\":".repeat(n / 5), "{".repeat(n), "}".repeat(n),
      `{"command":"status","x":${"[".repeat(16)}${"]".repeat(16)}}`, "\u0000".repeat(n), " ".repeat(n),
      Buffer.from(Array.from({ length: n }, (_, i) => 0x80 + (i % 64))).toString("utf8"), "null", "1", "\"status\"",
      `{"command":"wake"}`, `{"command":"restart"}`, `{"command":"logs","service":1}`, `{"command":"logs","service":null}`, `{"command":"wake","service":"${"\\".repeat(n - 40)}`
    ]
    for (const line of adversarial) expect(parseRequest(line)).toBeUndefined()
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (line) => void parseRequest(line)))
    // Long strings, escapes and a few fields more are still requests.
    expect(parseRequest(`{"command":"wake","service":"${"\\u0041".repeat(n / 6 - 8)}"}`))
      .toEqual({ command: "wake", service: "A".repeat(n / 6 - 8) })
    expect(parseRequest(`{"command":"status","x":{"y":[1]}}`)).toEqual({ command: "status" })
  })
})
