/**
 * A crash loop ends: after `--start-limit-burst` failed starts within `--start-limit-interval` the service is
 * failed. What waits is refused at once (a proxied HTTP client gets a 503), status says failed with the last error,
 * and `soad wake` or a reload starts it over.
 */
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appCommand, eventually, freePort, soad, soadRun, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()

/** Connects and waits until the connection ends: "closed" if soad closed it, else what came. */
const closedAtOnce = (socketPath: string): Promise<string> =>
  new Promise((resolve) => {
    const socket = Net.connect(socketPath)
    let received = ""
    socket.on("data", (chunk) => (received += chunk.toString()))
    socket.on("error", () => resolve("error"))
    socket.on("close", () => resolve(received === "" ? "closed" : received))
  })

describe("the start limit", () => {
  it("hand-off: 3 failed starts within 30 s and the service is failed; clients are refused at once; soad wake starts it over", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const control = Path.join(d, "control.sock")
    const s = soad([
      "-s", socketPath, "--control", control, "--log-format", "json", "--start-limit-burst", "3", "--start-limit-interval", "30",
      "--max-backoff", "0.2", "--name", "broken", "--", Path.join(d, "no-such-app")
    ])
    await s.waitFor(/"event":"listening"/)
    const first = closedAtOnce(socketPath) // starts the app, which cannot start; then the service fails
    await s.waitFor(/"event":"failed"/, 30_000)
    expect(await first).toBe("closed")
    expect(s.count(/"event":"start_failed"/)).toBe(3)
    // A new client is refused at once: nothing starts.
    expect(await closedAtOnce(socketPath)).toBe("closed")
    expect(s.count(/"event":"start_failed"/)).toBe(3)
    const table = soadRun(["status", "--control", control]).stdout
    expect(table).toMatch(/failed/)
    const json = JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<{ state: string; last_error: string | null }>
    expect(json[0]).toMatchObject({ state: "failed", last_error: expect.stringContaining("cannot start the app") })
    // soad wake: tried again at once.
    expect(soadRun(["wake", "broken", "--control", control]).stdout).toMatch(/failed; trying again, as asked/)
    await eventually(() => s.count(/"event":"start_failed"/) === 4, 15_000, "a fourth start")
  }, 60_000)

  it("proxy mode: an HTTP client of a failed service gets a 503; a reload starts it over", async () => {
    const d = dir()
    const port = await freePort()
    const socketPath = Path.join(d, "shop.sock")
    const path = writeConfig(d, `[services.shop]
listen = [${JSON.stringify(socketPath)}]
command = [${appCommand}, "--exit-code", "3"]
upstream = "127.0.0.1:${port}"
start-limit-burst = 2
min-uptime = 5
max-backoff = 0.2
`)
    const s = soad(["-c", path, "--control", Path.join(d, "control.sock"), "--log-format", "json"])
    await s.waitFor(/"event":"listening"/)
    const get = () =>
      new Promise<number>((resolve, reject) => {
        Http.get({ socketPath, path: "/", agent: false }, (response) => {
          response.resume()
          resolve(response.statusCode ?? 0)
        }).on("error", reject)
      })
    // Each request starts the app, which crashes before it comes up (its request is closed); the second crash
    // reaches the limit: from then on every request is answered 503 at once, and nothing starts.
    for (let i = 0; i < 2; i++) {
      await get().catch(() => 0)
      await eventually(() => s.count(/"event":"exited"/) === i + 1, 15_000, `crash ${i + 1}`)
    }
    await s.waitFor(/"event":"failed"/, 15_000)
    expect(await get()).toBe(503)
    expect(await get()).toBe(503)
    expect(s.count(/"event":"started"/)).toBe(2)
    s.process.kill("SIGHUP")
    await s.waitFor(/"event":"reloaded".*shop reset \(it was failed\)/, 15_000)
    expect(s.count(/"event":"reset"/)).toBe(1)
  }, 60_000)

  it("check and a run agree: a service whose command is not on its PATH is failed at start, in check's words; the others serve", async () => {
    const d = dir()
    const a = Path.join(d, "a.sock")
    const b = Path.join(d, "b.sock")
    const control = Path.join(d, "control.sock")
    const path = writeConfig(d, `[services.a]
listen = [${JSON.stringify(a)}]
command = ["no-such-app-x"]

[services.b]
listen = [${JSON.stringify(b)}]
command = [${appCommand}]
`)
    const checked = soadRun(["check", path])
    expect(checked.code).toBe(1)
    const said = /services\.a\.command: no-such-app-x is not on the app's PATH/
    expect(checked.stderr).toMatch(said)
    const s = soad(["-c", path, "--control", control, "--log-format", "json"])
    const line = await s.waitFor(/"event":"cannot_run"/)
    expect(line).toMatch(said)
    await s.waitFor(/"event":"listening".*b\.sock/)
    const json = JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<{ name: string; state: string }>
    expect(json.find((service) => service.name === "a")?.state).toBe("failed")
    expect(await closedAtOnce(a)).toBe("closed")
    expect(s.count(/"event":"start_failed"/)).toBe(0)
    // b serves; a reload of the same file leaves a failed (it still cannot run).
    await new Promise<void>((resolve, reject) => {
      Http.get({ socketPath: b, path: "/", agent: false }, (response) => {
        response.resume()
        response.on("end", resolve)
      }).on("error", reject)
    })
    s.process.kill("SIGHUP")
    await s.waitFor(/"event":"reloaded"/)
    expect(s.count(/reset \(it was failed\)/)).toBe(0)
  }, 60_000)
})
