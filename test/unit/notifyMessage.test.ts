/**
 * The notify datagram parser against a reference model (split into lines, one regular expression per line), on
 * arbitrary and adversarial input: bytes that are not UTF-8 (as the addon hands them over: U+FFFD), NULs, many
 * lines, long runs without a newline or of `=`, a STATUS= as long as a datagram, repeated keys. Its CPU per input
 * at the size limit is measured by the benchmark (`BENCH_ONLY=notify`), not here.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { maxBytes, type Notice, parse } from "../../src/core/notifyMessage.js"

/** The reference: what systemd's protocol says each line means, written the obvious way. */
const model = (message: string): Array<Notice> =>
  message.slice(0, maxBytes).split("\n").flatMap((line): Array<Notice> => {
    const [, key, value] = /^([^=]*)(?:=([\s\S]*))?$/.exec(line)!
    if (key === "READY" && value === "1") return [{ _tag: "Ready" }]
    if (key === "STATUS" && value !== undefined) return [{ _tag: "Status", text: value }]
    if (key === "STOPPING" && value === "1") return [{ _tag: "Stopping" }]
    if (key === "EXTEND_TIMEOUT_USEC" && value !== undefined && /^\d{1,20}$/.test(value) && BigInt(value) < 2n ** 64n) {
      return [{ _tag: "ExtendTimeout", usec: Number(value) }]
    }
    return []
  })

/** Lines soad acts on, near misses, and noise. */
const line = fc.oneof(
  fc.constantFrom(
    "READY=1",
    "READY=0",
    "READY=11",
    "READY",
    "STATUS=",
    "STATUS",
    "STATUS=a=b",
    "STOPPING=1",
    "EXTEND_TIMEOUT_USEC=0",
    "EXTEND_TIMEOUT_USEC=18446744073709551615",
    "EXTEND_TIMEOUT_USEC=18446744073709551616",
    "EXTEND_TIMEOUT_USEC=-1",
    "EXTEND_TIMEOUT_USEC=1e3",
    "=",
    "",
    "\0",
    "READY=1\0"
  ),
  fc.string().map((text) => `STATUS=${text}`),
  fc.bigInt({ min: 0n, max: 2n ** 70n }).map((n) => `EXTEND_TIMEOUT_USEC=${n}`),
  fc.string(),
  fc.fullUnicodeString()
)

/** A datagram as the addon gives it: whatever bytes, decoded as UTF-8 (bytes that are not UTF-8 become U+FFFD). */
const bytes = fc.uint8Array({ maxLength: 5000 }).map((b) => Buffer.from(b).toString("utf8"))

/** Shapes that hurt a careless parser: long runs of one character, alone or after a key. */
const runs = fc.tuple(
  fc.constantFrom("", "STATUS=", "READY=", "EXTEND_TIMEOUT_USEC=", "x"),
  fc.constantFrom("\n", "=", "x", "\0", "9", "\uFFFD", "READY=1\n", "a=b\n"),
  fc.nat(6000)
).map(([head, unit, n]) => head + unit.repeat(n))

const datagram = fc.oneof(fc.array(line, { maxLength: 200 }).map((lines) => lines.join("\n")), bytes, runs)

describe("the notify datagram parser", () => {
  it("agrees with the reference model on any datagram", () => {
    fc.assert(fc.property(datagram, (message) => {
      expect(parse(message)).toEqual(model(message))
    }), { numRuns: 2000 })
  })

  it("acts on each line in order, repeated keys too; other lines are skipped", () => {
    expect(parse("STATUS=one\nREADY=1\nSTATUS=two\nREADY=1\nWATCHDOG=1\nSTOPPING=1")).toEqual([
      { _tag: "Status", text: "one" },
      { _tag: "Ready" },
      { _tag: "Status", text: "two" },
      { _tag: "Ready" },
      { _tag: "Stopping" }
    ])
  })

  it("takes EXTEND_TIMEOUT_USEC up to 2^64 - 1, as systemd does, and nothing else", () => {
    expect(parse("EXTEND_TIMEOUT_USEC=18446744073709551615")).toEqual([{ _tag: "ExtendTimeout", usec: 18446744073709551615 }])
    expect(parse("EXTEND_TIMEOUT_USEC=18446744073709551616")).toEqual([])
    expect(parse("EXTEND_TIMEOUT_USEC=" + "9".repeat(4000))).toEqual([])
    expect(parse("EXTEND_TIMEOUT_USEC= 5")).toEqual([])
  })

  it("reads no more than a datagram's bound", () => {
    const status = parse("STATUS=" + "s".repeat(10 * maxBytes))
    expect(status).toEqual([{ _tag: "Status", text: "s".repeat(maxBytes - 7) }])
    expect(parse("x".repeat(maxBytes) + "\nREADY=1")).toEqual([])
  })
})
