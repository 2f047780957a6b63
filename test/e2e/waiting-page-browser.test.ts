/**
 * --waiting-page in a real browser: headless Chromium (Debian package `chromium`), driven over
 * --remote-debugging-pipe (fds 3 and 4, CDP JSON messages ending in NUL; no npm dependency), opens the address of
 * an app that takes 3 s to start. The promise: it first shows soad's waiting page, then lands on the app's own
 * page with no input at all. Skipped with a message when chromium is not installed, except under CI=true, where
 * that is a failure.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as Stream from "node:stream"
import * as Os from "node:os"
import { afterEach, describe, expect, it } from "vitest"
import { eventually, freePort, sleep, soad, tempDirs } from "../harness.js"

const dir = tempDirs()

const chromium = ["chromium", "chromium-browser"].find((program) =>
  ChildProcess.spawnSync("sh", ["-c", `command -v ${program}`]).status === 0
)
const python = ChildProcess.spawnSync("sh", ["-c", "command -v python3"]).status === 0
const available = (chromium !== undefined && python) || process.env.CI === "true"

/** A minimal CDP client over Chromium's debugging pipe. */
const browser = (program: string, profile: string) => {
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

describe("--waiting-page in a browser", () => {
  const test = available ? it : it.skip
  if (!available) it.skip("[skipped: needs chromium and python3 (apt-get install -y chromium); CI installs them]", () => {})

  test("headless Chromium sees the waiting page, then lands on the app's page without a click", async () => {
    const d = dir()
    Fs.writeFileSync(Path.join(d, "index.html"), "<!doctype html><title>The app</title><p id=app-marker>served by the app</p>\n")
    const port = await freePort()
    // The app binds its port (PORT, from --upstream auto) only 3 s after it starts.
    const s = soad([
      "-l", `127.0.0.1:${port}`, "--upstream", "auto", "--waiting-page", "1", "--log-level", "debug",
      "--", "sh", "-c", `sleep 3; exec python3 -m http.server --bind 127.0.0.1 "$PORT" --directory ${JSON.stringify(d)}`
    ])
    await s.waitFor(/listening on/)
    const profile = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-chromium-"))
    const { close, send } = browser(chromium!, profile)
    browsers.push({ close, profile })
    const { targetId } = await send<{ targetId: string }>("Target.createTarget", { url: `http://127.0.0.1:${port}/` })
    const { sessionId } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true })
    // Watch what the page shows (title and markers) until the test ends; nothing else is sent to the browser.
    const seen: Array<string> = []
    let watching = true
    const watch = (async () => {
      while (watching) {
        const shown = await send<{ result: { value?: string } }>("Runtime.evaluate", {
          expression: `document.title + "|" + (document.getElementById("soad-waiting-page") ? "waiting" : "") + "|" + ` +
            `(document.getElementById("app-marker") ? "app" : "")`,
          returnByValue: true
        }, sessionId).catch(() => ({ result: { value: undefined } })) // between two documents
        const value = shown.result.value
        if (value !== undefined && seen.at(-1) !== value) seen.push(value)
        await sleep(50)
      }
    })()
    try {
      await eventually(() => seen.some((value) => value.endsWith("|waiting|")), 15_000, "the waiting page")
      expect(seen.find((value) => value.endsWith("|waiting|"))).toBe("sh is starting|waiting|")
      expect(s.output()).not.toMatch(/the app accepts/) // shown while the app was starting
      await eventually(() => seen.at(-1) === "The app||app", 20_000, `the app's page (seen: ${JSON.stringify(seen)})`)
      expect(s.count(/answered a GET navigation with the waiting page/)).toBeGreaterThanOrEqual(1)
    } finally {
      watching = false
      await watch
    }
  }, 60_000)
})
