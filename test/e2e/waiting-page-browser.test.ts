/**
 * --waiting-page in a real browser: headless Chromium (Debian package `chromium`), driven over
 * --remote-debugging-pipe (fds 3 and 4, CDP JSON messages ending in NUL; no npm dependency), opens the address of
 * an app that takes 3 s to start. The promise: it first shows soad's waiting page, then lands on the app's own
 * page with no input at all. Skipped with a message when chromium is not installed, except under CI=true, where
 * that is a failure.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { available, open } from "../chromium.js"
import { eventually, freePort, sleep, soad, tempDirs } from "../harness.js"

const dir = tempDirs()

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
    const { evaluate } = await open(`http://127.0.0.1:${port}/`)
    // Watch what the page shows (title and markers) until the test ends; nothing else is sent to the browser.
    const seen: Array<string> = []
    let watching = true
    const watch = (async () => {
      while (watching) {
        const value = await evaluate<string>( // undefined between two documents
          `document.title + "|" + (document.getElementById("soad-waiting-page") ? "waiting" : "") + "|" + ` +
            `(document.getElementById("app-marker") ? "app" : "")`
        )
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
