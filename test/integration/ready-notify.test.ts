/**
 * `--ready notify` with real processes: the app gets a NOTIFY_SOCKET of its run's own, soad counts it ready only on
 * READY=1 (not when it accepts), shows its STATUS= in `soad status --json`, fails its start at --start-timeout
 * without READY=1, and ignores a datagram sent to that socket by a process that is not the app's; and under a
 * stranger's flood of that socket, the app's own READY=1 still gets through and soad says so about once a second.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { eventually, killAll, root, sleep, soad, soadRun, tempDirs } from "../harness.js"

const dir = tempDirs()
afterEach(killAll)
const app = Path.join(root, "test", "fixtures", "notify-app.py")

/** Connects to a UNIX socket and reads what the app says. */
const hello = (socketPath: string): Promise<string> =>
  new Promise((resolve, reject) => {
    let text = ""
    Net.connect(socketPath).on("data", (chunk) => (text += chunk)).on("end", () => resolve(text)).on("error", reject)
  })

const events = (lines: ReadonlyArray<string>) =>
  lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>)

describe("--ready notify", () => {
  it("is ready when the app sends READY=1 (≥ 500 ms), not when it accepts; its STATUS= shows in soad status", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const control = Path.join(d, "control.sock")
    const info = Path.join(d, "info")
    const s = soad(
      ["-s", socketPath, "--ready", "notify", "--log-format", "json", "--control", control, "--", "python3", app],
      { env: { ...process.env, INFO_FILE: info, READY_DELAY: "0.5", NOTIFY_SOCKET: "/nonexistent/soad-own" } }
    )
    await s.waitFor(/"event":"listening"/)
    expect(await hello(socketPath)).toBe("hello\n") // the app answers at once, before READY=1
    const ready = events([await s.waitFor(/"event":"ready"/, 15_000)])[0]!
    expect(ready.cold_start_ms).toBeGreaterThanOrEqual(500)
    const [, notifySocket] = Fs.readFileSync(info, "utf8").split("\n")
    expect(notifySocket).toMatch(/^@soad\/\d+\/python3\/\d+-[0-9a-f]+$/) // its own, never soad's NOTIFY_SOCKET
    const status = JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<{ app_status?: string; state: string }>
    expect(status[0]).toMatchObject({ state: "running", app_status: "warmed up" })
  })

  it("an app that never sends READY=1 fails its start at --start-timeout; a stranger's READY=1 is ignored", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const info = Path.join(d, "info")
    const s = soad(
      ["-s", socketPath, "--ready", "notify", "--start-timeout", "1", "--log-format", "json", "--", "python3", app],
      { env: { ...process.env, INFO_FILE: info, READY_DELAY: "never" } }
    )
    await s.waitFor(/"event":"listening"/)
    const client = Net.connect(socketPath).on("error", () => {})
    await eventually(() => Fs.existsSync(info) && Fs.readFileSync(info, "utf8").split("\n").length >= 3, 15_000, "the app's info")
    const [, notifySocket] = Fs.readFileSync(info, "utf8").split("\n")
    // The attack: another process (not in the app's session) says READY=1 on the app's notify socket.
    ChildProcess.execFileSync("python3", [
      "-c",
      // It stays alive while soad looks at it: its session is not the app's.
      "import socket,sys,time; p=sys.argv[1]; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', '\\0'+p[1:]); time.sleep(1.5)",
      notifySocket!
    ])
    await s.waitFor(/"event":"notify_ignored"/, 15_000)
    const notReady = events([await s.waitFor(/"event":"not_ready"/, 15_000)])[0]!
    expect(notReady.start_timeout_ms).toBe(1000)
    expect(events(s.lines).some((entry) => entry.event === "ready")).toBe(false)
    client.destroy()
  })
})

describe("a stranger floods the app's notify socket", () => {
  it("the app's READY=1 still gets through; soad says so at most about once a second, with the count", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const info = Path.join(d, "info")
    const started = Path.join(d, "flood-started")
    const s = soad(
      ["-s", socketPath, "--ready", "notify", "--start-timeout", "60", "--log-format", "json", "--", "python3", app],
      // The app sends READY=1 (a blocking sendto, as sd_notify) 2 s after the flood began.
      { env: { ...process.env, INFO_FILE: info, READY_DELAY: "2", READY_AFTER: started } }
    )
    await s.waitFor(/"event":"listening"/)
    const client = Net.connect(socketPath).on("error", () => {})
    await eventually(() => Fs.existsSync(info) && Fs.readFileSync(info, "utf8").split("\n").length >= 3, 10_000, "the app's info")
    const [, notifySocket] = Fs.readFileSync(info, "utf8").split("\n")
    // Its own session (setsid): not the app's. It sends as fast as it can and takes every slot soad frees.
    const flooder = ChildProcess.spawn("setsid", ["python3", Path.join(root, "test", "fixtures", "notify-flood.py"), notifySocket!, started], {
      stdio: "ignore"
    })
    try {
      await eventually(() => Fs.existsSync(started), 10_000, "the flood")
      const floodAt = Date.now()
      await s.waitFor(/"event":"ready"/, 30_000)
      await sleep(1000)
      const seconds = (Date.now() - floodAt) / 1000
      const said = events(s.lines).filter((entry) => entry.event === "notify_ignored")
      expect(said.length).toBeGreaterThanOrEqual(2)
      // At most one a second, and the one said at once (a margin of one for the seconds' edges).
      expect(said.length).toBeLessThanOrEqual(Math.ceil(seconds) + 2)
      expect(said.reduce((sum, entry) => sum + (entry.count as number), 0)).toBeGreaterThan(1000)
      expect(said[0]).toMatchObject({ from_pid: flooder.pid, level: "warn" })
      expect(events(s.lines).some((entry) => entry.event === "not_ready")).toBe(false)
    } finally {
      flooder.kill("SIGKILL")
      client.destroy()
    }
  })
})

describe("--ready", () => {
  it("refuses a value other than accept or notify", () => {
    const result = soadRun(["-s", "/tmp/x.sock", "--ready", "soon", "--", "true"])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/ready/)
  })
})
