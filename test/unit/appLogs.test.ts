/**
 * The machinery of per-app logs, without processes: cutting a byte stream into lines (long ones into marked
 * pieces that never split a UTF-8 character), the bounded ring of each service's latest lines, and the pause of a
 * service's pipes over its rate (real pipes, under TestClock).
 */
import { it as effect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs"
import { describe, expect, it } from "vitest"
import { type LogLine, make, pausedSeconds, rateLines, Ring, splitter } from "../../src/internal/appLogs.js"
import { native } from "../../src/internal/native.js"
import { captureEvents } from "../fakes.js"

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
