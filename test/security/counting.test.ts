/**
 * Exact counting must not let an app signal soad. The counting signal lives on the file description the app
 * shares; for an app run as another user, a sentinel of that user owns it, so an app that sets F_SETSIG(SIGKILL)
 * and connects to itself kills only the sentinel: soad and every other service go on.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { expect, it } from "vitest"
import { alive, appFixture, describeAsRoot, eventually, get, root, sleep, soad, tempDirs } from "../harness.js"
import { connectInTurn, connectionPatterns, contextSwitches, idleMillis } from "../warm.js"

const dir = tempDirs()
const hostileApp = JSON.stringify(Path.join(root, "test", "fixtures", "hostile_app.py"))
const node = JSON.stringify(process.execPath)
const app = JSON.stringify(appFixture)

const config = (d: string, hostileFlag: string) => {
  const path = Path.join(d, "apps.toml")
  Fs.writeFileSync(path, `
[defaults]
user = "nobody"
socket-mode = "0666"
time-until-stop = 30
[services.hostile]
listen = ["${d}/hostile.sock"]
command = ["python3", ${hostileApp}, "${hostileFlag}"]
[services.other]
listen = ["${d}/other.sock"]
command = [${node}, ${app}]
`)
  return path
}

/** Processes named soad-sentinel whose parent is `parent`: [pid, uid]. */
const sentinels = (parent: number): Array<[number, number]> =>
  Fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry): Array<[number, number]> => {
    try {
      const status = Fs.readFileSync(`/proc/${entry}/status`, "utf8")
      const field = (name: string) => status.match(new RegExp(`^${name}:\\s+(\\S+)`, "m"))?.[1]
      const running = field("Name") === "soad-sentinel" && Number(field("PPid")) === parent && field("State") !== "Z"
      return running ? [[Number(entry), Number(field("Uid"))]] : []
    } catch {
      return []
    }
  })

describeAsRoot("an app run as another user cannot turn counting against soad", () => {
  it("F_SETSIG(SIGKILL) and a connection to itself kill only the sentinel; soad and the other service go on", async () => {
    const d = dir()
    const s = soad(["-c", config(d, "--kill")])
    await s.waitFor(/listening on .*other\.sock/)
    const first = await get({ socketPath: Path.join(d, "hostile.sock") })
    expect(first.uid).toBe(65534)
    await s.waitFor(/counting sentinel \(pid \d+\) ended/)
    await sleep(200)
    expect(alive(s.pid)).toBe(true)
    // the attacked service still serves, and so does the other one
    expect((await get({ socketPath: Path.join(d, "hostile.sock") })).pid).toBe(first.pid)
    expect((await get({ socketPath: Path.join(d, "other.sock") })).uid).toBe(65534)
    expect(alive(s.pid)).toBe(true)
  })

  it("F_SETOWN(soad) signals no one, and soad has the sentinel take the socket back at its next look", async () => {
    const d = dir()
    const path = config(d, "--move-owner")
    Fs.writeFileSync(path, Fs.readFileSync(path, "utf8").replace("time-until-stop = 30", "time-until-stop = 1"))
    const s = soad(["-c", path, "--log-level", "debug"])
    await s.waitFor(/listening on .*other\.sock/)
    const first = await get({ socketPath: Path.join(d, "hostile.sock") })
    await s.waitFor(/counting on a listener was disturbed/, 15_000)
    expect(alive(s.pid)).toBe(true)
    // counting works again: requests every 0.6 s with -t 1 keep the same app (it accepts at once, so only
    // counting sees them)
    for (let i = 0; i < 4; i++) {
      await sleep(600)
      expect((await get({ socketPath: Path.join(d, "hostile.sock") })).pid, s.output()).toBe(first.pid)
    }
    expect(s.count(/stopping the app/)).toBe(0)
  })

  it("counting through the sentinel is exact: connections the app accepts at once keep it running", async () => {
    const d = dir()
    const path = Path.join(d, "apps.toml")
    Fs.writeFileSync(path, `
[services.a]
user = "nobody"
socket-mode = "0666"
time-until-stop = 1
listen = ["${d}/a.sock"]
command = [${node}, ${app}]
`)
    const s = soad(["-c", path])
    await s.waitFor(/listening on/)
    const first = await get({ socketPath: Path.join(d, "a.sock") })
    const running = sentinels(s.pid)
    expect(running).toHaveLength(1)
    expect(running[0]![1]).toBe(65534) // the sentinel runs as the app's user, not as root
    for (let i = 0; i < 5; i++) {
      await sleep(600)
      expect((await get({ socketPath: Path.join(d, "a.sock") })).pid).toBe(first.pid)
    }
    expect(s.count(/stopping the app|counting_fallback|readability/)).toBe(0)
    // after the idle stop, the sentinel is gone too
    await s.waitFor(/stopping the app/, 15_000)
    await s.waitFor(/exited/, 15_000)
    await eventually(() => sentinels(s.pid).length === 0, 15_000, "the sentinel to end with the run")
  })

  it("the sentinel sees every connection the app accepts at once, and wakes a few times a second, not once per connection", async () => {
    const d = dir()
    const path = Path.join(d, "apps.toml")
    Fs.writeFileSync(path, `
[services.a]
user = "nobody"
socket-mode = "0666"
time-until-stop = 60
listen = ["${d}/a.sock"]
command = [${node}, ${app}]
`)
    const control = Path.join(d, "control.sock")
    const s = soad(["-c", path, "--control", control])
    await s.waitFor(/listening on/)
    const socketPath = Path.join(d, "a.sock")
    await get({ socketPath })
    await eventually(() => sentinels(s.pid).length === 1, 15_000, "the sentinel")
    const sentinel = sentinels(s.pid)[0]![0]
    for (const [what, connect] of connectionPatterns(socketPath)) {
      const began = await connect()
      // soad's latest activity is at or after the start of the pattern's last connection (1 ms: whole ms clocks)
      expect(await idleMillis(control, "a"), what).toBeLessThanOrEqual(Date.now() - began + 1)
    }
    // A connection whose signal the sentinel has not taken yet (it is stopped) counts too: soad sees it queued.
    await sleep(1000)
    process.kill(sentinel, "SIGSTOP")
    try {
      const began = Date.now()
      await get({ socketPath })
      expect(await idleMillis(control, "a"), "a signal still queued").toBeLessThanOrEqual(Date.now() - began + 1)
    } finally {
      process.kill(sentinel, "SIGCONT")
    }
    await sleep(300)
    const connections = 400
    const before = contextSwitches(sentinel)
    const seconds = await connectInTurn(socketPath, connections)
    const switches = contextSwitches(sentinel) - before
    // It woke once per connection (measured: 400 for 400); now twice per 100 ms at most while connections come.
    expect(switches, `${switches} wakes of the sentinel for ${connections} connections in ${seconds} s`).toBeLessThan(connections / 2)
    expect(s.count(/stopping the app|counting_fallback|counting_lost|readability|disturbed/)).toBe(0)
  })
})
