/**
 * Text an app (or a client) chose, on its way to the operator's terminal: in text output its control characters
 * other than TAB become U+FFFD (a CR could overwrite the `[service]` prefix and forge another service's line, an
 * escape sequence set the window's title, write the clipboard or clear the screen); JSON keeps the exact text,
 * escaped. The app's lines on soad's stderr, soad's own log lines, `soad logs` and the status table share one rule.
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { PassThrough } from "node:stream"
import { describe, expect, it } from "vitest"
import * as Control from "../../src/observe/control.js"
import { jsonLine, type LogLine, textLine } from "../../src/observe/appLogs.js"
import { printable, stringify } from "../../src/observe/terminal.js"
import * as Logging from "../../src/Logging.js"

/** A control character other than TAB, raw. */
// eslint-disable-next-line no-control-regex
const control = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/
/** Any control character, raw (JSON has none left but the newline that ends a line). */
// eslint-disable-next-line no-control-regex
const anyControl = /[\u0000-\u001f\u007f-\u009f]/

/** What hostile apps write: a forged line, the window's title, the clipboard (OSC 52), the screen cleared. */
const hostile = [
  "\r[other] forged",
  "\u001b]0;owned\u0007",
  "\u001b]52;c;Y3VybCBldmlsIHwgc2g=\u0007",
  "\u001b[2J\u001b[H",
  "\u009b31m C1 CSI",
  "bell\u0007 back\b del\u007f nul\u0000 tab\tkept"
]

/** Strings biased to control characters, C1, U+FFFD and text around them. */
const texts = fc.array(
  fc.oneof(
    fc.integer({ min: 0, max: 0xa0 }).map((code) => String.fromCharCode(code)),
    fc.constantFrom(...hostile, "\ufffd", "é", "漢", "\t", "\u2028"),
    fc.string()
  ),
  { maxLength: 30 }
).map((parts) => parts.join(""))

const line = (text: string): LogLine => ({ time: 0, stream: "stdout", pid: 7, line: text, continued: false, bytes: text.length })

describe("printable: control characters other than TAB become U+FFFD, nothing else changes", () => {
  it("replaces each one in place, one for one, and keeps every other character", () => {
    fc.assert(
      fc.property(texts, (text) => {
        const shown = printable(text)
        expect(shown).not.toMatch(control)
        expect(shown.length).toBe(text.length)
        // each UTF-16 unit in place: U+FFFD for a control character, else itself (one expect: 2,000 texts)
        const expected = Array.from({ length: text.length }, (_, i) => (control.test(text[i]!) ? "\ufffd" : text[i]))
        expect(shown).toBe(expected.join(""))
      }),
      { numRuns: 2000 }
    )
  })

  it("at 16 KiB: one control character throughout, all of them in turn, and text between", () => {
    const all = Array.from({ length: 0xa0 }, (_, code) => String.fromCharCode(code)).filter((c) => control.test(c)).join("")
    for (const text of ["\u0001".repeat(16384), all.repeat(253), "a\u001b".repeat(8192), "\u0000".repeat(16384), "\ufffd\u0000".repeat(8192)]) {
      const shown = printable(text)
      expect(shown).toBe("\ufffd".repeat(text.length).split("").map((r, i) => (control.test(text[i]!) ? r : text[i])).join(""))
    }
    expect(printable("a".repeat(16384))).toBe("a".repeat(16384))
  })
})

describe("stringify: JSON with the exact text, no control character raw", () => {
  it("parses back to the same value; DEL and C1 escaped as well as C0", () => {
    fc.assert(
      fc.property(texts, (text) => {
        const json = stringify({ line: text })
        expect(json).not.toMatch(anyControl)
        expect(JSON.parse(json)).toEqual({ line: text })
      }),
      { numRuns: 2000 }
    )
    expect(stringify({ a: "\u007f\u009b" }, 2)).toBe("{\n  \"a\": \"\\u007f\\u009b\"\n}")
  })
})

describe("an app's output on soad's stderr", () => {
  it("text: `[service] line` with no control character, so no line can be forged or the terminal driven", () => {
    // Fault: the line went out as the app wrote it: `\r[other] forged` overwrote `[evil] ` on the terminal.
    for (const text of hostile) {
      const out = textLine("evil", line(text), false)
      expect(out.endsWith("\n")).toBe(true)
      expect(out.slice(0, -1)).not.toMatch(control)
      expect(out.startsWith("[evil] ")).toBe(true)
    }
    expect(textLine("evil", line("\r[other] forged"), false)).toBe("[evil] \ufffd[other] forged\n")
    expect(textLine("evil", line("tab\tkept"), true)).toBe("[evil]+ tab\tkept\n")
  })

  it("JSON: the exact line, escaped", () => {
    for (const text of hostile) {
      const out = jsonLine("evil", line(text), "2026-01-01T00:00:00.000Z")
      expect(out.slice(0, -1)).not.toMatch(anyControl)
      expect(JSON.parse(out)).toMatchObject({ service: "evil", event: "output", line: text })
    }
  })
})

describe("soad's own log lines", () => {
  it("text: what an app chose in an event's message (its STATUS=) cannot drive the terminal; JSON keeps it exact", () => {
    const status = "\u001b]0;owned\u0007\r[other] forged"
    const written: Array<string> = []
    const before = Logging.useStderr(() => ({
      writableLength: 0,
      write: (chunk, callback) => {
        written.push(chunk)
        callback(null)
        return true
      },
      on: () => undefined
    }))
    try {
      const log = Logging.event("info", "app_notify", `the app's status: ${status}`, { app_status: status }).pipe(
        Effect.annotateLogs("service", "evil")
      )
      Effect.runSync(Effect.provide(log, Logger.replace(Logger.defaultLogger, Logging.human)))
      Effect.runSync(Effect.provide(log, Logger.replace(Logger.defaultLogger, Logging.json)))
    } finally {
      Logging.useStderr(before)
    }
    expect(written).toHaveLength(2)
    const [text, json] = written as [string, string]
    expect(text).toMatch(/ INFO \[evil\] the app's status: \ufffd\]0;owned\ufffd\ufffd\[other\] forged\n$/)
    expect(text.slice(0, -1)).not.toMatch(control)
    expect(json.slice(0, -1)).not.toMatch(anyControl)
    expect(JSON.parse(json)).toMatchObject({ app_status: status, message: `the app's status: ${status}` })
  })
})

describe("soad logs NAME (text)", () => {
  it("prints each line with its control characters replaced; pieces of a cut line still join", async () => {
    // A stand-in soad on a control socket: the answer, then the lines as soad sends them (exact, in JSON).
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-terminal-"))
    const path = Path.join(dir, "control.sock")
    const messages = [...hostile.map((text) => ({ stream: "stdout", pid: 7, time: 0, line: text })),
      { stream: "stdout", pid: 7, time: 0, line: "cut\r", continued: true }, { stream: "stdout", pid: 7, time: 0, line: "here" }]
    const server = Net.createServer((socket) => {
      socket.once("data", () => {
        socket.end([{ ok: true }, ...messages].map((message) => JSON.stringify(message) + "\n").join(""))
      })
    })
    await new Promise<void>((resolve) => server.listen(path, resolve))
    const out = new PassThrough()
    let printed = ""
    out.on("data", (chunk: Buffer) => (printed += chunk.toString("utf8")))
    try {
      await Effect.runPromise(Control.logs(path, { command: "logs", service: "evil", lines: 10, follow: false }, { out, err: out }))
    } finally {
      server.close()
      Fs.rmSync(dir, { recursive: true, force: true })
    }
    const lines = printed.split("\n")
    expect(lines).toEqual([...hostile.map(printable), "cut\ufffdhere", ""])
    expect(printed.replaceAll("\n", "")).not.toMatch(control)
  })
})
