/**
 * Real, widely used servers under soad, each: activated by the first requests (all answered), stopped when idle,
 * activated again. The servers come from Debian's packages (.ci/run installs them); under CI=true a missing one
 * fails the run instead of being skipped.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { alive, eventually, killAll, root, soad, tempDir } from "../harness.js"

const fixtures = Path.join(root, "test", "fixtures")

const installed = (program: string): boolean =>
  ChildProcess.spawnSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).status === 0

/** A server runs, or its test is skipped, except in CI where a missing server is a failure. */
const serverTest = (program: string) =>
  installed(program) || process.env.CI === "true" ? it : it.skip

/** GET / over the socket; resolves with the body text. */
const get = (socketPath: string): Promise<string> =>
  new Promise((resolve, reject) => {
    Http.get({ socketPath, path: "/", agent: false, timeout: 20_000 }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => (response.statusCode === 200 ? resolve(body) : reject(new Error(`${response.statusCode}: ${body}`))))
    }).on("error", reject).on("timeout", function(this: Http.ClientRequest) {
      this.destroy(new Error("timed out"))
    })
  })

const dirs: Array<string> = []
afterEach(() => {
  killAll()
  for (const d of dirs.splice(0)) Fs.rmSync(d, { recursive: true, force: true })
})

/** Activates the server with a burst of requests, lets it go idle, activates it again. */
const exercise = async (command: (socketPath: string) => Array<string>) => {
  const d = tempDir()
  dirs.push(d)
  const socketPath = Path.join(d, "app.sock")
  const s = soad(["-s", socketPath, "-t", "1", "--stop-timeout", "10", "--", ...command(socketPath)])
  await s.waitFor(/listening on/)

  // The first connections arrive before the server runs: all wait in the backlog and are answered.
  const first = await Promise.all(Array.from({ length: 5 }, () => get(socketPath)))
  expect(first).toHaveLength(5)
  const started = await s.waitFor(/app started \(pid (\d+)/)
  const pid = Number(/pid (\d+)/.exec(started)![1])

  await s.waitFor(/stopping the app \(pid \d+, idle for/, 15_000)
  await s.waitFor(/app exited \(/, 15_000)
  await eventually(() => !alive(pid), 15_000, "the server to exit")
  expect(Fs.statSync(socketPath).isSocket()).toBe(true) // still soad's, whatever the server did at exit

  const second = await Promise.all(Array.from({ length: 5 }, () => get(socketPath)))
  expect(second).toHaveLength(5)
  expect(s.count(/app started/)).toBe(2)
  s.process.kill("SIGTERM")
  expect(await s.exited).toBe(0)
  expect(Fs.existsSync(socketPath)).toBe(false)
  return { first, second }
}

describe("real servers under soad", () => {
  serverTest("gunicorn")("gunicorn (reads LISTEN_FDS itself)", async () => {
    const { first } = await exercise(() => ["gunicorn", "--chdir", fixtures, "--workers", "1", "wsgi_app:app"])
    expect(JSON.parse(first[0]!).server).toMatch(/^gunicorn/)
  })

  serverTest("puma")("puma (-b unix:PATH with soad's path)", async () => {
    const { first } = await exercise((path) => ["puma", "-b", `unix://${path}`, Path.join(fixtures, "config.ru")])
    expect(JSON.parse(first[0]!).server).toBe("puma")
  })

  serverTest("uwsgi")("uwsgi (--protocol http, --die-on-term)", async () => {
    const { first } = await exercise((path) => [
      "uwsgi",
      "--plugin",
      "python3",
      "--protocol",
      "http",
      "--socket",
      path,
      "--wsgi-file",
      Path.join(fixtures, "wsgi_app.py"),
      "--die-on-term",
      "--master",
      "--processes",
      "1",
      "--disable-logging"
    ])
    expect(JSON.parse(first[0]!).pid).toBeGreaterThan(0)
  })

  it("a Node http server with listen({ fd: 3 }) (the demo app)", async () => {
    const { first } = await exercise(() => [process.execPath, Path.join(root, "src", "demo", "app.mjs")])
    expect(first[0]).toMatch(/Hello from the demo app/)
  })
})
