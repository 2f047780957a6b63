/**
 * Faults: soad's stderr cannot take its log lines (the pipe's reader is gone, the disk is full, the reader is
 * too slow). soad drops those lines, counts them in soad_log_lines_dropped_total, and goes on serving; SIGTERM
 * still ends it cleanly (exit 0, its socket removed).
 */
import * as ChildProcess from "node:child_process"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as Logging from "../../src/Logging.js"
import { alive, appFixture, bin, eventually, freePort, get, root, sleep, soad, tempDirs } from "../harness.js"

const dir = tempDirs()
const children: Array<ChildProcess.ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

/** GET /metrics on a TCP port: the body, or undefined while nothing answers. */
const scrape = (port: number): Promise<string | undefined> =>
  new Promise((resolve) => {
    Http.get({ host: "127.0.0.1", port, path: "/metrics", agent: false }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => resolve(body))
    }).on("error", () => resolve(undefined))
  })

const dropped = (text: string): number => {
  const line = text.split("\n").find((l) => l.startsWith("soad_log_lines_dropped_total "))
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1))
}

/** Activates the app with a real request, waits for its idle stop, and activates it again: the two pids. */
const activateTwice = async (socketPath: string): Promise<[number, number]> => {
  const first = (await get({ socketPath })).pid as number
  await eventually(() => !alive(first), 10_000, "the idle stop")
  const second = (await get({ socketPath })).pid as number
  expect(second).not.toBe(first)
  return [first, second]
}

describe("log writes that fail", () => {
  it("fault: soad's stderr is a pipe whose reader has gone (EPIPE); promise: soad goes on serving, counts the dropped lines, and exits 0 at SIGTERM removing its socket", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const port = await freePort()
    const s = soad(["-s", socketPath, "-t", "0.3", "--metrics", `127.0.0.1:${port}`, "--", process.execPath, appFixture])
    await s.waitFor(/metrics on http/)
    s.process.stderr!.destroy() // the reader goes: every later write to soad's stderr fails with EPIPE
    await sleep(100)
    const [, second] = await activateTwice(socketPath)
    expect(alive(s.pid)).toBe(true)
    expect(dropped((await scrape(port))!)).toBeGreaterThan(0)
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    expect(alive(second)).toBe(false)
    expect(Fs.existsSync(socketPath)).toBe(false)
  })

  it("fault: soad's stderr is a full disk (/dev/full, ENOSPC on every write); promise: soad serves, --metrics shows the dropped lines, SIGTERM exits 0 and removes the socket", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const port = await freePort()
    const full = Fs.openSync("/dev/full", "w")
    const child = ChildProcess.spawn(process.execPath, [
      bin, "-s", socketPath, "-t", "0.3", "--log-format", "json", "--metrics", `127.0.0.1:${port}`,
      "--", process.execPath, appFixture
    ], { stdio: ["ignore", "ignore", full], cwd: root })
    Fs.closeSync(full)
    children.push(child)
    const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)))
    let body: string | undefined
    await eventually(() => Fs.existsSync(socketPath), 10_000, "the listening socket")
    for (let i = 0; i < 100 && (body = await scrape(port)) === undefined; i++) await sleep(50)
    expect(dropped(body!)).toBeGreaterThan(0) // "listening" and "metrics on …" at least
    const [, second] = await activateTwice(socketPath)
    expect(alive(child.pid!)).toBe(true)
    const after = dropped((await scrape(port))!)
    expect(after).toBeGreaterThan(dropped(body!)) // started, stopping, exited, started: each one counted
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
    expect(alive(second)).toBe(false)
    expect(Fs.existsSync(socketPath)).toBe(false)
  })

  it("fault: stderr's reader never reads (a full pipe); promise: a log write never blocks, at most 256 KiB waits in memory, and the rest is dropped and counted", async () => {
    // A real pipe to a process that never reads it: the kernel's buffer fills, then Node would queue for ever.
    const reader = ChildProcess.spawn("sleep", ["30"], { stdio: ["pipe", "ignore", "ignore"] })
    children.push(reader)
    const sink = reader.stdin!
    const count = () => Effect.runSync(Metric.value(Logging.droppedLines)).count
    const before = count()
    const line = "x".repeat(99) + "\n"
    const lines = 10_000 // 1 MB: far more than the pipe (64 KiB) and the queue (256 KiB) hold
    for (let i = 0; i < lines; i++) Logging.writeLine(line, sink)
    expect(sink.writableLength).toBeLessThanOrEqual(Logging.queueLimitBytes + line.length)
    const lost = count() - before
    expect(lost).toBeGreaterThan(0)
    expect(lost).toBeLessThan(lines)
    // The reader goes: what was waiting fails (EPIPE), is counted, and nothing is thrown.
    reader.kill("SIGKILL")
    await eventually(() => sink.writableLength === 0, 15_000, "the queue to drain")
    await sleep(50)
    const drained = count() - before
    expect(drained).toBeGreaterThan(lost) // the lines that were waiting, each counted once it failed
    Logging.writeLine(line, sink)
    await eventually(() => count() - before === drained + 1, 15_000, "the next line to be counted")
  })
})
