/**
 * Seeing and steering soad: JSON logs, Prometheus metrics, soad status/wake/sleep over the control socket,
 * and systemd's notification protocol.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { afterEach, describe, expect, it } from "vitest"
import * as AppLogs from "../../src/observe/appLogs.js"
import * as Control from "../../src/observe/control.js"
import * as Registry from "../../src/Registry.js"
import { alive, appFixture, bin, eventually, freePort, get, sleep, soad, soadRun, tempDirs } from "../harness.js"

const dir = tempDirs()
const children: Array<ChildProcess.ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

const scrape = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    Http.get({ host: "127.0.0.1", port, path: "/metrics" }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => resolve(body))
    }).on("error", reject)
  })

/** The value of a sample, or undefined if absent. */
const sample = (text: string, name: string, labels: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `) || (labels === "" && l.startsWith(`${name} `)))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
}

describe("--log-format json", () => {
  it("writes one JSON object per line with time, level, service, event, pid and durations", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.3", "--log-format", "json", "--", "node", appFixture])
    await s.waitFor(/"event":"listening"/)
    const reply = await get({ socketPath })
    await s.waitFor(/"event":"exited"/, 15_000)
    s.process.kill("SIGTERM")
    await s.exited
    const events = s.lines.map((line) => JSON.parse(line) as Record<string, unknown>)
    for (const entry of events) {
      expect(typeof entry.time).toBe("string")
      expect(Number.isNaN(Date.parse(entry.time as string))).toBe(false)
      expect(["debug", "info", "warn", "error"]).toContain(entry.level)
      expect(typeof entry.event).toBe("string")
      expect(typeof entry.message).toBe("string")
    }
    const byEvent = (name: string) => events.find((entry) => entry.event === name)!
    expect(byEvent("listening")).toMatchObject({ service: "node", listener: socketPath })
    expect(byEvent("started")).toMatchObject({ service: "node", pid: reply.pid, trigger: "connection" })
    expect(typeof byEvent("started").spawn_ms).toBe("number")
    expect(byEvent("stopping")).toMatchObject({ pid: reply.pid, reason: "idle" })
    expect(byEvent("stopping").idle_ms).toBeGreaterThanOrEqual(300)
    expect(byEvent("exited")).toMatchObject({ pid: reply.pid, code: 0, signal: null, by_itself: false })
    expect(typeof byEvent("exited").uptime_ms).toBe("number")
  })

  it("a bad --log-format is a usage error", () => {
    const result = soadRun(["-s", Path.join(dir(), "a.sock"), "--log-format", "xml", "--", "app"])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/--log-format: 'xml' is not one of text, json/)
  })
})

describe("--metrics", () => {
  it("serves valid Prometheus text whose figures follow a real activation and idle stop", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const port = await freePort()
    const s = soad(["-s", socketPath, "-t", "0.5", "--metrics", `127.0.0.1:${port}`, "--", "node", appFixture])
    await s.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/)
    const before = await scrape(port)
    for (const line of before.trim().split("\n")) {
      expect(line).toMatch(/^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? (\d+(\.\d+)?(e[-+]?\d+)?|\+Inf))$/)
    }
    expect(sample(before, "soad_service_state", `service="node",state="stopped"`)).toBe(1)
    expect(sample(before, "soad_activations_total", `service="node"`) ?? 0).toBe(0)
    expect(sample(before, "soad_resident_memory_bytes", "")).toBeGreaterThan(10e6)

    const reply = await get({ socketPath })
    let running = await scrape(port)
    // "starting" until soad has seen the app accept (it looks every 20 ms while the app starts)
    for (let i = 0; i < 50 && sample(running, "soad_service_state", `service="node",state="running"`) !== 1; i++) {
      await sleep(20)
      running = await scrape(port)
    }
    expect(sample(running, "soad_service_state", `service="node",state="running"`)).toBe(1)
    expect(sample(running, "soad_activations_total", `service="node"`)).toBe(1)
    expect(sample(running, "soad_cold_start_seconds_count", `service="node"`)).toBe(1)
    expect(sample(running, "soad_app_resident_memory_bytes", `service="node"`)).toBeGreaterThan(10e6)
    expect(sample(running, "soad_app_uptime_seconds", `service="node"`)).toBeGreaterThan(0)

    await s.waitFor(/app exited/, 15_000)
    await eventually(() => !alive(reply.pid as number), 15_000, "the app to stop")
    const after = await scrape(port)
    expect(sample(after, "soad_idle_stops_total", `service="node"`)).toBe(1)
    expect(sample(after, "soad_service_state", `service="node",state="stopped"`)).toBe(1)
    expect(sample(after, "soad_app_uptime_seconds", `service="node"`)).toBe(0)
  })
})

describe("the control socket", () => {
  it("soad status, wake and sleep steer the running soad", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const control = Path.join(d, "control.sock")
    const s = soad(["-s", socketPath, "-t", "60", "--control", control, "--", "node", appFixture])
    await s.waitFor(/listening on/)
    await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
    expect(Fs.statSync(control).mode & 0o777).toBe(0o600)

    const idle = soadRun(["status", "--control", control])
    expect(idle.code).toBe(0)
    expect(idle.stdout).toMatch(/^SERVICE\s+STATE\s+PID\s+UPTIME\s+IDLE\s+MEMORY\s+PEAK\s+SAVED\s+STARTS\s+LISTEN\s+LAST ERROR$/m)
    expect(idle.stdout).toMatch(/^node\s+stopped\s+-\s+-\s+-\s+-\s+-\s+0 MB·h\s+0\s+\S+\s+-$/m)

    const woken = soadRun(["wake", "node", "--control", control])
    expect(woken.stdout.trim()).toBe("node: starting")
    await s.waitFor(/app started \(pid \d+, on request\)/)
    const json = JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<{ state: string; pid: number }>
    expect(json[0]).toMatchObject({ name: "node", activations: 1 })
    await eventually(() => alive(json[0]!.pid), 15_000, "the woken app")
    expect(soadRun(["wake", "node", "--control", control]).stdout.trim()).toBe("node: already running")

    const slept = soadRun(["sleep", "node", "--control", control])
    expect(slept.stdout.trim()).toBe("node: stopped")
    expect(alive(json[0]!.pid)).toBe(false)
    expect(soadRun(["sleep", "node", "--control", control]).stdout.trim()).toBe("node: not running")

    // The next connection starts it again.
    const reply = await get({ socketPath })
    expect(reply.pid).not.toBe(json[0]!.pid)

    const unknown = soadRun(["wake", "blog", "--control", control])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("soad: no service 'blog'; the services are node")
  })

  it("lists every service of a config file", async () => {
    const d = dir()
    const control = Path.join(d, "control.sock")
    const config = Path.join(d, "apps.toml")
    Fs.writeFileSync(config, ["a", "b"].map((name) =>
      `[services.${name}]\nlisten = ["${d}/${name}.sock"]\ncommand = [${JSON.stringify(process.execPath)}, ${JSON.stringify(appFixture)}]\n`
    ).join(""))
    const s = soad(["-c", config, "--control", control])
    await s.waitFor(/listening on .*b\.sock/)
    await get({ socketPath: Path.join(d, "b.sock") })
    await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
    const status = soadRun(["status", "--control", control]).stdout
    expect(status).toMatch(/^a\s+stopped\s+/m)
    expect(status).toMatch(/^b\s+running\s+\d+\s+/m)
  })

  it("refuses another user: the socket is 0600, and soad checks the peer's uid", async () => {
    const d = dir()
    const control = Path.join(d, "control.sock")
    const s = soad(["-s", Path.join(d, "app.sock"), "--control", control, "--", "node", appFixture])
    await s.waitFor(/listening on/)
    await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
    const asNobody = (...args: Array<string>) =>
      ChildProcess.spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, bin, ...args], {
        encoding: "utf8",
        cwd: "/"
      })
    const denied = asNobody("status", "--control", control)
    expect(denied.status).toBe(1)
    expect(denied.stderr.trim()).toBe(`soad: ${control}: permission denied: only soad's user may control it`)
    // Even if the file's mode were opened up, soad itself refuses a peer that is not its user.
    Fs.chmodSync(control, 0o666)
    const refused = asNobody("sleep", "node", "--control", control)
    expect(refused.status).toBe(1)
    expect(refused.stderr.trim()).toBe("soad: permission denied: not soad's user")
    // A refused peer leaves nothing behind that would hold soad's shutdown.
    s.process.kill("SIGTERM")
    expect(await Promise.race([s.exited, sleep(5000).then(() => "still running 5 s after SIGTERM")])).toBe(0)
  })

  it("refuses a peer it cannot verify: the credentials cannot be read, so nobody is let in", async () => {
    // Fault: the peer's credentials cannot be read (no fd, SO_PEERCRED failing). Promise: soad refuses, and says
    // why, instead of letting an unknown peer wake, stop or inspect its apps. The reader is swapped in-process;
    // the socket, the server and the client are the real ones.
    const control = Path.join(dir(), "control.sock")
    const ask = (peer?: Control.PeerReader) =>
      Effect.runPromise(
        Effect.scoped(
          Control.serve(control, true, peer).pipe(Effect.zipRight(Control.request(control, { command: "status" })))
        ).pipe(Effect.provide(Layer.merge(Registry.layer, AppLogs.layerInherit)))
      )
    expect(await ask(() => undefined)).toEqual({ ok: false, error: "permission denied: cannot verify the peer" })
    expect(await ask()).toEqual({ ok: true, services: [] }) // the live reader lets soad's own user in
  })

  it("a soad that does not capture its apps' output (AppLogs.inherit, SoadContext's default) refuses `logs` and says why", async () => {
    // The default AppLogs leaves each app soad's stdout and stderr: there are no lines to give, as when soad ran
    // without an AppLogs at all. The server, socket and client are real.
    const control = Path.join(dir(), "control.sock")
    const refused = await Effect.runPromise(
      Effect.scoped(
        Control.serve(control, true).pipe(
          Effect.zipRight(Effect.flip(Control.logs(control, { command: "logs", lines: 10, follow: false }, { out: process.stdout, err: process.stderr })))
        )
      ).pipe(Effect.provide(Layer.merge(Registry.layer, AppLogs.layerInherit)))
    )
    expect(refused.message).toContain("this soad does not capture its apps' output")
  })

  it("reads one request per connection, at most 4 KiB: what a peer sends after it is never parsed again", async () => {
    // Fault: each chunk was appended to the request and the whole request parsed again: a peer that kept sending
    // after `wake` woke the service once per chunk and piled its bytes up in soad's memory; and a line past the
    // limit was still parsed when its newline came in the same chunk. The server, socket and peers are real.
    const control = Path.join(dir(), "control.sock")
    let wakes = 0
    const handle: Registry.Handle = {
      name: "x",
      status: Effect.die("not asked"),
      wake: Effect.sync(() => (wakes++, "starting")),
      sleep: Effect.succeed("not running")
    }
    /** Connects, sends `first`, then `after` chunk by chunk once answered; the answer. */
    const peer = (first: string, after: ReadonlyArray<string> = []): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = Net.connect(control)
        let answer = ""
        socket.on("error", reject)
        socket.on("connect", () => socket.write(first))
        socket.on("data", async (chunk) => {
          answer += chunk.toString()
          if (!answer.endsWith("\n")) return
          for (const more of after) {
            socket.write(more)
            await sleep(20)
          }
          socket.end()
          resolve(answer)
        })
      })
    await Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        yield* (yield* Registry.Registry).register(handle)
        yield* Control.serve(control, true)
        const woken = yield* Effect.promise(() => peer(`{"command":"wake","service":"x"}\n`, Array(10).fill("more\n")))
        expect(JSON.parse(woken)).toEqual({ ok: true, message: "x: starting" })
        yield* Effect.sleep("300 millis") // what the peer sent after its request has reached soad
        expect(wakes).toBe(1)
        const long = yield* Effect.promise(() => peer(`{"command":"wake","service":"x","pad":"${"x".repeat(10_000)}"}\n`))
        expect(JSON.parse(long)).toEqual({ ok: false, error: "request too long" })
        const nested = yield* Effect.promise(() => peer(`${"[".repeat(4000)}\n`))
        expect(JSON.parse(nested)).toEqual({ ok: false, error: "bad request" })
        expect(wakes).toBe(1)
      })).pipe(Effect.provide(Layer.merge(Registry.layer, AppLogs.layerInherit)))
    )
  })

  it("a second soad with the same --name runs without a control socket and says so; the same --control is an error", async () => {
    const d = dir()
    const env = { ...process.env, XDG_RUNTIME_DIR: d }
    const first = soad(["--name", "x", "-s", Path.join(d, "a.sock"), "--", "node", appFixture], { env })
    await first.waitFor(/listening on/)
    await eventually(() => Fs.existsSync(Path.join(d, "soad", "x.sock")), 15_000, "the control socket")
    const second = soad(["--name", "x", "-s", Path.join(d, "b.sock"), "--", "node", appFixture], { env })
    await second.waitFor(
      /no control socket: .*x\.sock: another soad is using it \(give this soad its own --name NAME, or --control PATH\)/
    )
    expect(soadRun(["status"], { env }).stdout).toMatch(/a\.sock/)
    // asked for explicitly, the same path is an error
    const third = soadRun(["-s", Path.join(d, "c.sock"), "--control", Path.join(d, "soad", "x.sock"), "--", "app"], { env })
    expect(third.code).toBe(1)
    expect(third.stderr).toMatch(/--control .*x\.sock: another soad is using it/)
  })
})

describe("systemd notify", () => {
  it("sends READY=1 once listening and STOPPING=1 when it shuts down", async () => {
    const d = dir()
    const notifySocket = Path.join(d, "notify.sock")
    const received = Path.join(d, "received")
    // Node cannot receive UNIX datagrams; python3 stands in for systemd.
    const listener = ChildProcess.spawn("python3", [
      "-c",
      `import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], "w").close()
while True:
    data = s.recv(4096)
    with open(sys.argv[2], "a") as f:
        f.write(data.decode() + "\\n")`,
      notifySocket,
      received
    ], { stdio: "ignore" })
    children.push(listener)
    await eventually(() => Fs.existsSync(received), 15_000, "the notify listener")
    const socketPath = Path.join(d, "app.sock")
    const s = soad(["-s", socketPath, "--", "node", appFixture], { env: { ...process.env, NOTIFY_SOCKET: notifySocket } })
    await s.waitFor(/listening on/)
    await eventually(() => Fs.readFileSync(received, "utf8").includes("READY=1"), 15_000, "READY=1")
    const reply = await get({ socketPath })
    expect((reply.env as Record<string, unknown>).NOTIFY_SOCKET).toBeUndefined() // the app never gets it
    expect(Fs.readFileSync(received, "utf8")).not.toContain("STOPPING=1")
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    await eventually(() => Fs.readFileSync(received, "utf8").includes("STOPPING=1"), 15_000, "STOPPING=1")
    // (STATUS= lines come between them: systemd.test.ts)
    expect(Fs.readFileSync(received, "utf8").trim().split("\n").filter((m) => !m.startsWith("STATUS="))).toEqual(["READY=1", "STOPPING=1"])
    await sleep(10)
  })
})

/** The answer to a request with this method: its status, headers and body. */
const request = (port: number, method: string): Promise<{ status: number; headers: Http.IncomingHttpHeaders; body: string }> =>
  new Promise((resolve, reject) => {
    Http.request({ host: "127.0.0.1", port, path: "/metrics", method, agent: false }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
    }).on("error", reject).end()
  })

describe("--metrics, before anything happens", () => {
  it("every counter of every service exists at 0, soad's process metrics are there, HEAD answers without a body", async () => {
    // Fault: a counter appeared only at its first event, so rate() and alerts saw nothing until then; no process_*
    // metrics; HEAD /metrics was a 404. Promise: all of them from the first scrape.
    const d = dir()
    const port = await freePort()
    const config = Path.join(d, "apps.toml")
    Fs.writeFileSync(config, ["a", "b"].map((name) =>
      `[services.${name}]\nlisten = ["${d}/${name}.sock"]\ncommand = [${JSON.stringify(process.execPath)}, ${JSON.stringify(appFixture)}]\n`
    ).join(""))
    const s = soad(["-c", config, "--metrics", `127.0.0.1:${port}`])
    await s.waitFor(/metrics on http/)
    const text = await scrape(port)
    for (const service of ["a", "b"]) {
      for (const counter of ["soad_activations_total", "soad_idle_stops_total", "soad_crashes_total", "soad_failed_starts_total"]) {
        expect(sample(text, counter, `service="${service}"`), `${counter}{service="${service}"}`).toBe(0)
      }
      expect(sample(text, "soad_cold_start_seconds_count", `service="${service}"`)).toBe(0)
      expect(sample(text, "soad_saved_memory_byte_seconds_total", `service="${service}"`)).toBe(0)
    }
    expect(sample(text, "process_resident_memory_bytes", "")).toBeGreaterThan(10e6)
    expect(sample(text, "process_open_fds", "")).toBeGreaterThan(3)
    expect(sample(text, "process_max_fds", "")).toBeGreaterThan(0)
    const start = sample(text, "process_start_time_seconds", "")!
    expect(Math.abs(start - Date.now() / 1000)).toBeLessThan(60)
    expect(text).toMatch(/^# TYPE process_cpu_seconds_total counter$/m)
    const head = await request(port, "HEAD")
    expect(head.status).toBe(200)
    expect(head.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(Number(head.headers["content-length"])).toBeGreaterThan(100)
    expect(head.body).toBe("")
    expect((await request(port, "POST")).status).toBe(404)
  })
})

describe("the saving", () => {
  it("status and metrics show the app's peak memory while it ran and the RAM-time saved since it stopped, and a total", async () => {
    // Promise: soad shows what it exists for. After one run, PEAK is the app's memory while it ran (node: tens of
    // MB) and SAVED grows with the time the app stays stopped.
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const control = Path.join(d, "control.sock")
    const port = await freePort()
    const s = soad(["-s", socketPath, "-t", "0.3", "--control", control, "--metrics", `127.0.0.1:${port}`, "--", "node", appFixture])
    await s.waitFor(/metrics on http/)
    const before = JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<Record<string, unknown>>
    expect(before[0]).toMatchObject({ peak_memory_bytes: null, saved_byte_seconds: 0, last_error: null })
    expect(sample(await scrape(port), "soad_app_peak_resident_memory_bytes", `service="node"`)).toBeUndefined()

    const reply = await get({ socketPath })
    await s.waitFor(/app exited/, 15_000)
    await eventually(() => !alive(reply.pid as number), 15_000, "the app to stop")
    const first = JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<{ peak_memory_bytes: number; saved_byte_seconds: number }>
    expect(first[0]!.peak_memory_bytes).toBeGreaterThan(10e6) // sampled at the stop: a Node app
    await sleep(1000)
    const later = JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<{ peak_memory_bytes: number; saved_byte_seconds: number }>
    expect(later[0]!.peak_memory_bytes).toBe(first[0]!.peak_memory_bytes)
    // At least the peak × the second slept (the clock of the status request, not exact: a lower bound).
    expect(later[0]!.saved_byte_seconds - first[0]!.saved_byte_seconds).toBeGreaterThanOrEqual(first[0]!.peak_memory_bytes * 0.9)

    const metrics = await scrape(port)
    expect(sample(metrics, "soad_app_peak_resident_memory_bytes", `service="node"`)).toBe(first[0]!.peak_memory_bytes)
    expect(sample(metrics, "soad_saved_memory_byte_seconds_total", `service="node"`)).toBeGreaterThanOrEqual(
      Math.floor(later[0]!.saved_byte_seconds)
    )
    const table = soadRun(["status", "--control", control]).stdout
    expect(table).toMatch(/^node\s+stopped\s+-\s+-\s+-\s+-\s+\d+M\s+0\.0\d+ MB·h\s+1\s+\S+\s+-$/m)
    expect(table).toMatch(/^total\s+0 running\s+0M\s+0\.0\d+ MB·h\s+1$/m)
  })
})

describe("a failing service", () => {
  it("soad wake says it is failing and when it tries next; status shows the last error; ready is logged at info", async () => {
    // Fault: `soad wake` said "starting" for a service in backoff, and nothing said why it failed. Promise: wake
    // says "failing: next try in …" with the last error, and the status table shows that error.
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const control = Path.join(d, "control.sock")
    const flag = Path.join(d, "crash")
    Fs.writeFileSync(flag, "")
    const s = soad(["-s", socketPath, "--max-backoff", "30", "--control", control, "--", "node", appFixture, "--crash-if", flag])
    await s.waitFor(/listening on/)
    await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
    get({ socketPath }, "/", 2000).catch(() => undefined) // starts the app, which crashes
    await s.waitFor(/failing: next try in/, 15_000)
    const woken = soadRun(["wake", "node", "--control", control])
    expect(woken.stdout.trim()).toMatch(
      /^node: failing: next try in [\d.]+ s \(1 failure in a row; last: the app exited by itself after [\d.]+ m?s \(code \d+\)\); trying now, as asked$/
    )
    const table = soadRun(["status", "--control", control]).stdout
    expect(table).toMatch(/^node\s+.*\s\d+s ago: the app exited by itself after [\d.]+ m?s \(code \d+\)$/m)
    // Once it works, its readiness is logged at info level.
    Fs.rmSync(flag)
    await get({ socketPath }, "/", 20_000)
    await s.waitFor(/INFO \[node\] the app accepts connections/, 15_000)
  })
})
