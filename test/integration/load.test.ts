/**
 * Load around the idle timeout: for 20 s, bursts of parallel requests with random gaps on both sides of -t, so
 * the app is stopped and started many times, sometimes while requests arrive. Every single request must be answered.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, expect, it } from "vitest"
import { appFixture, get, killAll, sleep, soad, tempDir } from "../harness.js"

const dirs: Array<string> = []
afterEach(() => {
  killAll()
  for (const d of dirs.splice(0)) Fs.rmSync(d, { recursive: true, force: true })
})

it("answers every request across many start/stop cycles", async () => {
  const d = tempDir()
  dirs.push(d)
  const socketPath = Path.join(d, "app.sock")
  const idle = 300
  // The app takes 100 ms to exit after SIGTERM (it stops accepting at once): connections meanwhile wait.
  const s = soad(["-s", socketPath, "-t", String(idle / 1000), "--", "node", appFixture, "--stop-delay", "100"])
  await s.waitFor(/listening on/)
  let requests = 0
  let failures = 0
  const errors: Array<string> = []
  const end = Date.now() + 20_000
  while (Date.now() < end) {
    const burst = 1 + Math.floor(Math.random() * 8)
    const replies = await Promise.allSettled(Array.from({ length: burst }, () => get({ socketPath }, "/", 15_000)))
    for (const reply of replies) {
      requests++
      if (reply.status === "rejected") {
        failures++
        errors.push(String(reply.reason))
      }
    }
    await sleep(Math.random() * 2 * idle) // 0 to 0.6 s: on both sides of the idle deadline
  }
  const cycles = s.count(/app started/)
  console.log(`load: ${requests} requests, ${cycles} start/stop cycles, ${failures} failures`)
  expect(errors).toEqual([])
  expect(failures).toBe(0)
  expect(cycles).toBeGreaterThanOrEqual(10)
}, 60_000)
