/**
 * `BENCH_ONLY=parsers`: the CPU each parser of outside bytes spends on one input at its size limit, for the
 * adversarial inputs of each (the shapes that made the first versions quadratic, and their cousins). run.ts runs
 * this in a child process with soad's own V8 flags (--lite-mode: V8 only interprets, so a loop costs what it costs
 * in soad) and prints the worst input of each parser. The goal: 1 ms at most.
 */
import * as AppLogs from "../../src/observe/appLogs.js"
import * as ControlRequest from "../../src/observe/controlRequest.js"
import * as WaitingPage from "../../src/modes/waitingPage.js"
import * as FirstClassifier from "../reference/waitingPage.js"

/** One input's figure: CPU per call in µs (median and least of the runs). */
export interface Figure {
  readonly parser: string
  readonly input: string
  readonly bytes: number
  readonly median: number
  readonly min: number
}

/** What the child reports. */
export interface Report {
  readonly figures: ReadonlyArray<Figure>
  /** The first classifier on the issue's head (`X: a<spaces>b`, 16 KiB), one call, µs. */
  readonly firstClassifier: number
  readonly firstClassifierBytes: number
}

const runs = 31

/** CPU (user + system) of one call of `run`, in µs: the median and the least of `runs` calls after a warm-up. */
const cpuPerCall = (run: () => unknown): { median: number; min: number } => {
  for (let i = 0; i < 5; i++) run()
  const times: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const before = process.cpuUsage()
    run()
    const spent = process.cpuUsage(before)
    times.push(spent.user + spent.system)
  }
  times.sort((a, b) => a - b)
  return { median: times[Math.floor(runs / 2)]!, min: times[0]! }
}

const latin1 = (text: string) => Buffer.from(text, "latin1")

/** Cuts `text` to `size` characters (a filler repeated past the limit, then cut). */
const fit = (text: string, size: number) => text.slice(0, size)

/** Adversarial heads, each at the 16 KiB a peek sees. */
const heads = (): Record<string, Buffer> => {
  const size = WaitingPage.maxHead
  const get = "GET / HTTP/1.1\r\n"
  const tail = "\r\nAccept: text/html\r\n\r\n"
  const run = (filler: string, before: string, after: string) =>
    latin1(before + filler.repeat(Math.ceil(size / filler.length)).slice(0, size - before.length - after.length) + after)
  return {
    "the issue's head: X: a, spaces, b": run(" ", `${get}X: a`, `b${tail}`),
    "a value of tabs then b": run("\t", `${get}X: a`, `b${tail}`),
    "headers of 3 bytes (A:\\n)": run("A:\n", get, "Accept: text/html\n\n"),
    "headers of 6 bytes (A: b\\r\\n)": run("A: b\r\n", get, "Accept: text/html\r\n\r\n"),
    "Accept headers without text/html": run("Accept:\n", get, "\n"),
    "Accept: text/html followed by spaces then x": run(" ", `${get}Accept: text/html`, "x\r\n\r\n"),
    "Accept: many ' text/html' then x": run(" text/html", `${get}Accept:`, "x\r\n\r\n"),
    "a 16 KiB request target": run("a", "GET /", ` HTTP/1.1${tail}`),
    "a 16 KiB method": run("G", "", ` / HTTP/1.1${tail}`),
    "CRs without LF in a value": run("\r", `${get}X: `, tail),
    "NUL and bytes that are not UTF-8 in a value": run("\u0000\u00ff\u00c3", `${get}X: `, tail),
    "incomplete, 1 byte short of 16 KiB (looked at again every 100 ms)": latin1(fit(`GET /${"a".repeat(size)}`, size - 1)),
    "incomplete, a first line of spaces": latin1(fit(`GET / HTTP/1.1${" ".repeat(size)}`, size - 2) + "\r\n"),
    "16 KiB of LF": latin1("\n".repeat(size))
  }
}

/** Adversarial request lines, each at the 4 KiB limit (with its newline), in one chunk. */
const requests = (): Record<string, Buffer> => {
  const size = ControlRequest.maxRequestBytes
  const line = (text: string) => Buffer.from(fit(text, size) + "\n", "latin1")
  const escaped = `{"command":"wake","service":"${"\\u0041".repeat(size)}`
  return {
    "nested [": line("[".repeat(size)),
    "nested {\"a\":": line("{\"a\":".repeat(size)),
    "an object of many keys": line(`{${Array.from({ length: size }, (_, i) => `"${i.toString(36)}":0`).join(",")}`),
    "a string of \\u escapes": line(escaped.slice(0, size - 2) + "\"}"),
    "NUL": line("\u0000".repeat(size)),
    "bytes that are not UTF-8": line("\u00ff\u00c3".repeat(size))
  }
}

/** Adversarial lines of an app's output, each maxLineBytes with its newline. */
const appLines = (): Record<string, Buffer> => {
  const size = AppLogs.maxLineBytes
  const controls = Buffer.from(Array.from({ length: 0xa0 }, (_, c) => c).filter((c) => c !== 9 && c !== 10 && (c < 0x20 || c === 0x7f)))
  const fill = (unit: Buffer) => Buffer.concat([Buffer.alloc(size, unit), Buffer.from("\n")])
  return {
    "every byte \\x01": fill(Buffer.from([1])),
    "every C0 control and DEL in turn": fill(controls),
    "C1 (U+009B, CSI) throughout": fill(Buffer.from("\u009b")),
    "ESC [2J throughout": fill(Buffer.from("\u001b[2J")),
    "bytes that are not UTF-8 (0xff)": fill(Buffer.from([0xff])),
    "printable ASCII (no control)": fill(Buffer.from("abcdefgh"))
  }
}

/** Runs every input: the figures, each parser's inputs in turn. */
export const measure = (): Report => {
  const figures: Array<Figure> = []
  const add = (parser: string, input: string, bytes: number, run: () => unknown) =>
    figures.push({ parser, input, bytes, ...cpuPerCall(run) })

  for (const [input, bytes] of Object.entries(heads())) {
    add("HTTP head (waiting page)", input, bytes.length, () => WaitingPage.classify(bytes))
  }
  for (const [input, bytes] of Object.entries(requests())) {
    add("control request", input, bytes.length, () => {
      const read = ControlRequest.lineReader()
      const got = read(bytes)
      return got._tag === "Line" ? ControlRequest.parseRequest(got.line) : got
    })
  }
  for (const [input, bytes] of Object.entries(appLines())) {
    for (const format of ["text", "json"] as const) {
      add(`app output line, ${format}`, input, bytes.length, () => {
        let out = ""
        const split = AppLogs.splitter((buffer, start, end, continued) => {
          const line: AppLogs.LogLine = { time: 0, stream: "stdout", pid: 1, line: buffer.toString("utf8", start, end), continued, bytes: end - start }
          out = format === "text" ? AppLogs.textLine("blog", line, false) : AppLogs.jsonLine("blog", line, "2026-01-01T00:00:00.000Z")
        })
        split.push(bytes)
        return out
      })
    }
  }
  const issue = heads()["the issue's head: X: a, spaces, b"]!
  const before = process.cpuUsage()
  FirstClassifier.classify(issue)
  const spent = process.cpuUsage(before)
  return { figures, firstClassifier: spent.user + spent.system, firstClassifierBytes: issue.length }
}
