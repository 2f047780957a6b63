/**
 * soad's stderr without process.stderr (os/stderr.ts), on a real pipe: a reader that stops reading never blocks
 * soad, what waits is counted and arrives whole and in order once the reader reads again; a reader that is gone
 * fails each waiting line (EPIPE), without throwing; a file is written at once.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { native } from "../../src/os/native.js"
import type { LineSink } from "../../src/Logging.js"
import * as Stderr from "../../src/os/stderr.js"

/** A pipe made non-blocking at its write end, as stderr() makes fd 2 when it is one, and a sink writing to it. */
const pipeSink = () => {
  const n = native()
  const { read, write } = n.outputPipe()
  n.nonBlocking(write)
  n.nonBlocking(read)
  const sink = Stderr.fdSink(write, false, (fd, callback) => void n.watchWritable(fd, callback))
  return { read, write, sink }
}

/** Writes `line` to `sink`; resolves with its callback's error (null: written). */
const send = (sink: LineSink, line: string): Promise<Error | null> =>
  new Promise((resolve) => void sink.write(line, (error) => resolve(error ?? null)))

/** What the pipe holds now, read without blocking. */
const drain = (fd: number): string => {
  const chunks: Array<Buffer> = []
  const buffer = Buffer.alloc(65536)
  for (;;) {
    try {
      const got = Fs.readSync(fd, buffer)
      if (got === 0) break
      chunks.push(Buffer.from(buffer.subarray(0, got)))
    } catch {
      break // EAGAIN: empty
    }
  }
  return Buffer.concat(chunks).toString()
}

describe("soad's stderr", () => {
  it("a reader that stops reading: no write blocks, what waits is counted, and it all arrives in order once read", async () => {
    const { read, write, sink } = pipeSink()
    try {
      const lines = Array.from({ length: 400 }, (_, i) => `${String(i).padStart(4, "0")} ${"x".repeat(995)}\n`)
      const sent = lines.map((line) => send(sink, line)) // 400 KB into a 64 KiB pipe, at once
      expect(sink.writableLength).toBeGreaterThan(300_000) // the rest waits in memory, not in a blocked write
      let received = ""
      while (received.length < 400_000) {
        received += drain(read)
        await new Promise((resolve) => setImmediate(resolve)) // the loop turns: the writable watch flushes
      }
      expect(await Promise.all(sent)).toEqual(lines.map(() => null))
      expect(received).toBe(lines.join(""))
      expect(sink.writableLength).toBe(0)
    } finally {
      Fs.closeSync(read)
      Fs.closeSync(write)
    }
  })

  it("a reader that is gone: each line, waiting or new, fails with EPIPE, and nothing throws", async () => {
    const { read, write, sink } = pipeSink()
    try {
      const waiting = Array.from({ length: 100 }, (_, i) => send(sink, `${i} ${"y".repeat(2000)}\n`))
      Fs.closeSync(read)
      const errors = await Promise.all(waiting)
      expect(errors.filter((error) => error === null).length).toBeLessThan(40) // what fitted in the pipe before
      expect(errors.filter((error) => error !== null).every((error) => /EPIPE/.test(String(error)))).toBe(true)
      expect(String(await send(sink, "after\n"))).toMatch(/EPIPE/)
      expect(sink.writableLength).toBe(0)
    } finally {
      Fs.closeSync(write)
    }
  })

  it("a file is written at once, line by line", async () => {
    const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-stderr-")), "log")
    const fd = Fs.openSync(file, "a")
    try {
      const sink = Stderr.fdSink(fd, true, () => {
        throw new Error("a file needs no watch")
      })
      expect(await send(sink, "one\n")).toBeNull()
      expect(Fs.readFileSync(file, "utf8")).toBe("one\n") // before the loop turned
      expect(await send(sink, "two\n")).toBeNull()
      expect(Fs.readFileSync(file, "utf8")).toBe("one\ntwo\n")
    } finally {
      Fs.closeSync(fd)
      Fs.rmSync(Path.dirname(file), { recursive: true })
    }
  })
})
