/**
 * The machinery of per-app logs, without processes: cutting a byte stream into lines (long ones into marked
 * pieces that never split a UTF-8 character), the bounded ring of each service's latest lines, and the pause of a
 * service's pipes over its rate (real pipes, under TestClock).
 */
import { it as effect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs"
import { describe, expect, it, vi } from "vitest"
import { type LogLine, make, maxLineBytes, pausedSeconds, rateLines, Ring, splitter } from "../../src/observe/appLogs.js"
import { native } from "../../src/os/native.js"
import { captureEvents } from "../../src/testing.js"

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

/** A piece as the splitter emits it: its bytes (copied: the buffer is only lent) and whether the line goes on. */
type Piece = readonly [Buffer, boolean]

/** Feeds `bytes` cut at `cuts` to a splitter of `max` bytes, then ends it; the pieces. */
const pieces = (bytes: Buffer, cuts: ReadonlyArray<number>, max: number): Array<Piece> => {
  const out: Array<Piece> = []
  const s = splitter((buffer, start, stop, continued) => out.push([Buffer.from(buffer.subarray(start, stop)), continued]), max)
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    if (cut <= from) continue
    s.push(bytes.subarray(from, cut))
    from = cut
  }
  s.end()
  return out
}

/** An app's output: lines of any length, long runs, CR, NUL, controls, UTF-8 (some cut) and bytes that are not. */
const output = fc.array(
  fc.oneof(
    fc.constantFrom("\n", "\r", "\r\n", "\u0000", "\u001b[2J", "é", "€", "😀", "x").map((s) => Buffer.from(s)),
    fc.tuple(fc.constantFrom(0x20, 0x0d, 0x1b, 0x80, 0xc3, 0xe2, 0xf0, 0xff), fc.integer({ min: 1, max: 40 }))
      .map(([byte, count]) => Buffer.alloc(count, byte)),
    fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)),
    fc.string({ unit: "grapheme", maxLength: 6 }).map((s) => Buffer.from(s))
  ),
  { maxLength: 40 }
).map((parts) => Buffer.concat(parts))

const cutsOf = (bytes: Buffer) => fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, bytes.length) }), { maxLength: 12 })
  .map((cuts) => cuts.sort((a, b) => a - b))

describe("splitter: properties", () => {
  it("any chunks of the same bytes give the same pieces; pieces fit max, hold no newline, and rebuild the bytes", () => {
    fc.assert(
      fc.property(output.chain((bytes) => fc.tuple(fc.constant(bytes), cutsOf(bytes))), fc.integer({ min: 4, max: 24 }), ([bytes, cuts], max) => {
        const whole = pieces(bytes, [], max)
        expect(pieces(bytes, cuts, max)).toEqual(whole)
        expect(whole.filter(([piece]) => piece.length > max || piece.includes(10))).toEqual([]) // none too long, none with \n
        // The framing is the input's: pieces joined, a newline after each line's last piece (none after the last).
        const rebuilt = Buffer.concat(whole.flatMap(([piece, continued]) => continued ? [piece] : [piece, Buffer.from("\n")]))
        const expected = bytes.length > 0 && bytes[bytes.length - 1] !== 10 ? Buffer.concat([bytes, Buffer.from("\n")]) : bytes
        expect(rebuilt.equals(expected)).toBe(true)
        expect(whole.filter(([, continued]) => !continued)).toHaveLength(expected.filter((b) => b === 10).length)
      }),
      { numRuns: 1000 }
    )
  })

  it("never cuts a UTF-8 character of a line that is UTF-8", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", maxLength: 30 }), { maxLength: 5 }), fc.integer({ min: 4, max: 16 }), (lines, max) => {
        // (U+FFFD itself may be in a line: it is what a cut character would become, so the lines hold none.)
        const bytes = Buffer.from(lines.map((l) => l.replaceAll("\n", "").replaceAll("\ufffd", "") + "\n").join(""))
        for (const [piece] of pieces(bytes, [], max)) expect(piece.toString("utf8")).not.toContain("\ufffd")
      })
    )
  })

  it("copies each byte a bounded number of times, however small the chunks: work in proportion to the bytes", () => {
    // Fault: each chunk of an unfinished line was joined to all of it so far: a 16 KiB line written a byte at a
    // time cost soad 1 + 2 + … + 16,384 bytes copied (134 MB).
    const original = Buffer.concat.bind(Buffer)
    const copy = Buffer.prototype.copy
    const copied = () => {
      let total = 0
      const concat = vi.spyOn(Buffer, "concat").mockImplementation((list, length) => {
        total += list.reduce((sum: number, b) => sum + b.length, 0)
        return original(list, length)
      })
      const copying = vi.spyOn(Buffer.prototype, "copy").mockImplementation(function (this: Buffer, ...args) {
        const copiedBytes = copy.apply(this, args)
        total += copiedBytes
        return copiedBytes
      })
      return { total: () => total, restore: () => (concat.mockRestore(), copying.mockRestore()) }
    }
    for (const bytes of [Buffer.alloc(maxLineBytes, 0x01), Buffer.alloc(3 * maxLineBytes + 5, "é"), Buffer.from("ab".repeat(maxLineBytes))]) {
      const count = copied()
      let out: Array<Piece>
      try {
        out = pieces(bytes, Array.from({ length: bytes.length }, (_, i) => i + 1), maxLineBytes)
      } finally {
        count.restore()
      }
      expect(count.total()).toBeLessThanOrEqual(4 * bytes.length)
      expect(Buffer.concat(out.map(([piece]) => piece)).equals(bytes)).toBe(true)
    }
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

/** Real event-loop turns (no test time passes) until `done`, for at most 10 s of real time. */
const until = (done: () => boolean, what: string) =>
  Effect.gen(function*() {
    const end = Date.now() + 10_000
    while (!done()) {
      if (Date.now() > end) return yield* Effect.dieMessage(`never: ${what}`)
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(() => setImmediate(resolve), 1)))
    }
  })

describe("over the rate", () => {
  effect.scoped("a service's pipe is left unread until the second is over, said once per episode, then summed up", () =>
    Effect.gen(function*() {
      const { events, layer } = captureEvents()
      const context = yield* Layer.build(layer)
      const written: Array<string> = []
      const sink = { writableLength: 0, write: (chunk: string, done: () => void) => (written.push(chunk), done(), true), on: () => undefined }
      const logs = yield* make("text", sink).pipe(Effect.provide(context))
      const pipe = native().outputPipe()
      yield* Effect.addFinalizer(() => Effect.sync(() => native().close(pipe.write)))
      logs.output("flood").capture(42, "stdout", pipe.read)
      const read = () => written.join("").split("\n").length - 1
      Fs.writeSync(pipe.write, Buffer.alloc(2.5 * rateLines * 2, "y\n")) // 25,000 lines: fits in the pipe's buffer
      yield* until(() => read() >= rateLines, "the first second's lines")
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 50)))
      expect(read()).toBe(rateLines) // no more this second: the rest waits
      const named = (name: string) => events.filter((e) => e.name === name)
      yield* until(() => named("output_paused").length > 0, "output_paused")
      expect(named("output_paused").map((e) => e.fields)).toEqual([{ service: "flood", pid: 42, stream: "stdout", rate_lines: rateLines }])
      yield* TestClock.adjust("1 second")
      yield* until(() => read() >= 2 * rateLines, "the second second's lines")
      yield* TestClock.adjust("1 second")
      yield* until(() => read() >= 2.5 * rateLines, "the rest")
      expect(named("output_paused")).toHaveLength(1) // once for the episode, not once a second
      expect(named("output_resumed")).toEqual([])
      yield* TestClock.adjust("5 seconds")
      yield* until(() => named("output_resumed").length > 0, "output_resumed")
      expect(named("output_resumed")[0]!.fields).toMatchObject({ service: "flood", paused_ms: 2000, pauses: 2, lines: 1.5 * rateLines })
      const paused = yield* Metric.value(Metric.tagged(pausedSeconds, "service", "flood"))
      expect(paused.count).toBe(2)
    }))

  effect.scoped("an app being stopped is read at once and never paused again: beyond the rate its lines are dropped", () =>
    Effect.gen(function*() {
      const { events, layer } = captureEvents()
      const context = yield* Layer.build(layer)
      const written: Array<string> = []
      const sink = { writableLength: 0, write: (chunk: string, done: () => void) => (written.push(chunk), done(), true), on: () => undefined }
      const logs = yield* make("text", sink).pipe(Effect.provide(context))
      const pipe = native().outputPipe()
      const output = logs.output("stopping")
      output.capture(7, "stderr", pipe.read)
      const read = () => written.join("").split("\n").length - 1
      Fs.writeSync(pipe.write, Buffer.alloc(2 * rateLines * 2, "y\n"))
      yield* until(() => events.some((e) => e.name === "output_paused"), "output_paused")
      output.release(7)
      Fs.writeSync(pipe.write, Buffer.alloc(2 * rateLines * 2, "z\n")) // more than the pipe holds if it stayed unread
      native().close(pipe.write)
      yield* TestClock.adjust("1 second")
      yield* until(() => events.some((e) => e.name === "output_dropped"), "output_dropped")
      expect(read()).toBe(rateLines)
      expect(events.find((e) => e.name === "output_dropped")!.fields).toMatchObject({ service: "stopping", lines: 3 * rateLines })
    }))
})
