/**
 * Headless Chromium (Debian package `chromium`) for the browser tests, driven over --remote-debugging-pipe (fds 3
 * and 4, CDP JSON messages ending in NUL; no npm dependency). `available` says whether it (and python3, which the
 * tests' apps use) is here; under CI=true a missing one is a failure, not a skip.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type * as Stream from "node:stream"
import { afterEach } from "vitest"

/** The Chromium program, if one is installed. */
export const chromium = ["chromium", "chromium-browser"].find((program) =>
  ChildProcess.spawnSync("sh", ["-c", `command -v ${program}`]).status === 0
)

const python = ChildProcess.spawnSync("sh", ["-c", "command -v python3"]).status === 0

/** Whether the browser tests run: chromium and python3 are here, or CI says they must be. */
export const available = (chromium !== undefined && python) || process.env.CI === "true"

/** A minimal CDP client over Chromium's debugging pipe. */
const launch = (program: string, profile: string) => {
  const child = ChildProcess.spawn(program, [
    "--headless",
    "--no-sandbox", // soad's tests run as root
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-proxy-server",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    `--user-data-dir=${profile}`,
    "about:blank"
  ], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] })
  const toBrowser = child.stdio[3] as Stream.Writable
  const fromBrowser = child.stdio[4] as Stream.Readable
  const waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>()
  let nextId = 1
  let buffer = ""
  fromBrowser.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8")
    let end: number
    while ((end = buffer.indexOf("\0")) >= 0) {
      const message = JSON.parse(buffer.slice(0, end)) as { id?: number; result?: unknown; error?: { message: string } }
      buffer = buffer.slice(end + 1)
      const waiter = message.id === undefined ? undefined : waiting.get(message.id)
      if (waiter === undefined) continue
      waiting.delete(message.id!)
      if (message.error !== undefined) waiter.reject(new Error(message.error.message))
      else waiter.resolve(message.result)
    }
  })
  const send = <A>(method: string, params: object = {}, sessionId?: string): Promise<A> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      waiting.set(id, { resolve: (result) => resolve(result as A), reject })
      toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }) + "\0")
    })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  /** Browser.close, so Chromium ends its own processes; SIGKILL if it has not exited 5 s later. */
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    void send("Browser.close").catch(() => {})
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000)
    await exited
    clearTimeout(timer)
  }
  return { child, send, close }
}

const browsers: Array<{ readonly close: () => Promise<void>; readonly profile: string }> = []
afterEach(async () => {
  for (const { close, profile } of browsers.splice(0)) {
    await close()
    Fs.rmSync(profile, { recursive: true, force: true, maxRetries: 10 })
  }
})

/** A browser with a fresh profile, closed (and its profile removed) after the test. */
export const browser = (): ReturnType<typeof launch> => {
  const profile = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-chromium-"))
  const launched = launch(chromium!, profile)
  browsers.push({ close: launched.close, profile })
  return launched
}

/** Opens `url` in a new tab; `evaluate` runs an expression in it and gives its value (undefined between two documents). */
export const open = async (url: string) => {
  const { send } = browser()
  const { targetId } = await send<{ targetId: string }>("Target.createTarget", { url })
  const { sessionId } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true })
  const evaluate = async <A>(expression: string): Promise<A | undefined> => {
    const shown = await send<{ result: { value?: A }; exceptionDetails?: unknown }>("Runtime.evaluate", {
      expression,
      returnByValue: true
    }, sessionId).catch(() => undefined)
    return shown === undefined || shown.exceptionDetails !== undefined ? undefined : shown.result.value
  }
  return { send, sessionId, evaluate }
}
