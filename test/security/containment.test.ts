/**
 * No process an app started outlives its stop or soad, daemons that leave the app's process group (setsid) and
 * grandchildren included, also after `kill -9` of soad; and a soad that finds what a killed one left cleans it up
 * instead of refusing to start. Needs root and a writable cgroup v2 (Linux).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as Cgroup from "../../src/os/cgroup.js"
import { alive, appFixture, describeAsRoot, eventually, get, type Soad, soad, tempDirs } from "../harness.js"

const dir = tempDirs()
const cgroups = process.platform === "linux" ? Cgroup.findRoot() : { _tag: "Unusable" as const, reason: "not Linux" }
const mount = process.platform === "linux" ? Cgroup.findMount(Fs.readFileSync("/proc/self/mountinfo", "utf8")) : undefined

/** The cgroup directory a process is in. */
const cgroupOf = (pid: number): string => {
  const path = Cgroup.ownPath(Fs.readFileSync(`/proc/${pid}/cgroup`, "utf8"))!
  return Path.join(mount!.mountPoint, mount!.root === "/" ? path : path.slice(mount!.root.length))
}

/** The session id of a process (field 6 of /proc/PID/stat). */
const sessionOf = (pid: number): number => Number(Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[3])

// What a test leaves when it fails: the daemons it saw, and their cgroups.
const strays: Array<number> = []
const strayCgroups: Array<string> = []
afterEach(() => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone, as it should be
    }
  }
  for (const cgroup of strayCgroups.splice(0)) {
    if (!Path.basename(cgroup).startsWith("soad.")) continue
    Cgroup.kill(cgroup)
    try {
      Fs.rmdirSync(cgroup)
    } catch {
      // gone, or its processes are still dying
    }
  }
})

/** soad serving an app whose shell first starts a daemon that leaves the app's session and process group. */
const start = (d: string, idle = "60"): { readonly s: Soad; readonly socketPath: string; readonly daemonFile: string; readonly args: Array<string> } => {
  const socketPath = Path.join(d, "app.sock")
  const daemonFile = Path.join(d, "daemon.pid")
  const args = [
    "-s", socketPath, "-t", idle, "--control", Path.join(d, "control.sock"), "--log-format", "json", "--",
    "sh", "-c", `setsid sleep 1000 & echo $! > ${daemonFile}; exec node ${appFixture}`
  ]
  return { s: soad(args), socketPath, daemonFile, args }
}

/** Activates the app; its pid, the daemon's pid and their cgroup. */
const activate = async (socketPath: string, daemonFile: string) => {
  const reply = await get({ socketPath })
  const app = reply.pid as number
  await eventually(() => Fs.existsSync(daemonFile) && Fs.readFileSync(daemonFile, "utf8").endsWith("\n"), 15_000, "the daemon's pid")
  const daemon = Number(Fs.readFileSync(daemonFile, "utf8"))
  strays.push(daemon)
  await eventually(() => alive(daemon), 15_000, "the daemon to run")
  // The premise: the daemon left the app's session, so its process group.
  expect(sessionOf(daemon)).not.toBe(sessionOf(app))
  const path = cgroupOf(app)
  if (Path.basename(path).startsWith("soad.")) strayCgroups.push(path) // never the test's own cgroup
  // A cgroup's inode is its id, never reused: the cgroup soad makes ahead for the next start has the same name.
  return { app, daemon, cgroup: { path, id: Fs.statSync(path).ino } }
}

/**
 * The app and its daemon were in a cgroup of their own, named for the service, and it is gone. A cgroup of that
 * name may be there again (soad makes one ahead for the next start, the cold path): a new one, and empty.
 */
const expectCgroupGone = async (cgroup: { readonly path: string; readonly id: number }) => {
  expect(Path.basename(cgroup.path)).toMatch(/^soad\.sh-[0-9a-f]{8}\.\d+$/)
  const gone = () => {
    try {
      return Fs.statSync(cgroup.path).ino !== cgroup.id &&
        Fs.readFileSync(Path.join(cgroup.path, "cgroup.procs"), "utf8").trim() === ""
    } catch {
      return true // no such cgroup
    }
  }
  await eventually(gone, 15_000, "the cgroup to be removed")
}

const events = (s: Soad, name: string): Array<Record<string, unknown>> =>
  s.lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e.event === name)

const suite = cgroups._tag === "Root" ? describeAsRoot : (name: string, body: () => void) =>
  describe.skip(`${name} [skipped: ${cgroups._tag === "Unusable" ? cgroups.reason : ""}]`, body)

suite("containment: nothing an app started outlives its stop or soad", () => {
  it("says which guarantee it gives: cgroup, with the guard", async () => {
    const { s } = start(dir())
    await s.waitFor(/"event":"containment"/)
    const [containment] = events(s, "containment")
    expect(containment).toMatchObject({ level: "info", guarantee: "cgroup" })
    expect(alive(containment!.guard_pid as number)).toBe(true)
  })

  it("attack: a daemon that calls setsid to leave the app's group; promise: the idle stop kills it and removes the cgroup", async () => {
    const d = dir()
    const { s, socketPath, daemonFile } = start(d, "0.5")
    await s.waitFor(/"event":"listening"/)
    const { app, daemon, cgroup } = await activate(socketPath, daemonFile)
    await s.waitFor(/"event":"exited"/, 10_000)
    await eventually(() => !alive(app) && !alive(daemon), 15_000, "the app and its daemon to be gone")
    await expectCgroupGone(cgroup)
    expect(events(s, "leftovers_killed")[0]).toMatchObject({ count: 1 })
  })

  it("fault: soad is killed with SIGKILL; promise: the app and its daemon are gone within seconds, and the cgroup too", async () => {
    const d = dir()
    const { s, socketPath, daemonFile } = start(d)
    await s.waitFor(/"event":"listening"/)
    const { app, daemon, cgroup } = await activate(socketPath, daemonFile)
    s.process.kill("SIGKILL")
    await s.exited
    await eventually(() => !alive(app) && !alive(daemon), 15_000, "the app and its daemon to be gone")
    await expectCgroupGone(cgroup)
  })

  it("fault: soad-guard is killed, then soad; promise: soad says so, a new guard takes over every app at once, and the daemon dies with soad", async () => {
    const d = dir()
    const { s, socketPath, daemonFile } = start(d)
    await s.waitFor(/"event":"containment"/)
    const { app, daemon, cgroup } = await activate(socketPath, daemonFile)
    const guard = events(s, "containment")[0]!.guard_pid as number
    process.kill(guard, "SIGKILL")
    await s.waitFor(/"event":"guard_restarted"/)
    expect(events(s, "guard_died")[0]).toMatchObject({ level: "error", guard_pid: guard, signal: "SIGKILL" })
    const [restarted] = events(s, "guard_restarted")
    expect(restarted).toMatchObject({ previous_guard_pid: guard })
    expect(restarted!.entries as number).toBeGreaterThanOrEqual(1) // the app's cgroup, and one armed ahead maybe
    const next = restarted!.guard_pid as number
    expect(next).not.toBe(guard)
    expect(alive(next)).toBe(true)
    s.process.kill("SIGKILL")
    await s.exited
    // Only a guard reaches the daemon: it left the app's process group, and has no parent-death signal.
    await eventually(() => !alive(app) && !alive(daemon), 5000, "the new guard to kill the app and its daemon")
    await expectCgroupGone(cgroup)
    await eventually(() => !alive(next), 5000, "the new guard to exit")
  })

  it("fault: soad and its guard are killed, the daemon keeps the socket; promise: the next soad kills the leftover and serves", async () => {
    const d = dir()
    const first = start(d)
    await first.s.waitFor(/"event":"containment"/)
    const { daemon, cgroup } = await activate(first.socketPath, first.daemonFile)
    const guard = events(first.s, "containment")[0]?.guard_pid as number | undefined
    // Both die at once (an OOM kill of the whole unit, say): soad, stopped first, cannot start a new guard.
    first.s.process.kill("SIGSTOP")
    if (guard !== undefined) process.kill(guard, "SIGKILL")
    await eventually(() => guard === undefined || !alive(guard), 15_000, "the guard to die")
    first.s.process.kill("SIGKILL")
    await first.s.exited
    // The leftover: the daemon runs on, holding the listening socket it inherited.
    expect(alive(daemon)).toBe(true)

    const second = soad(first.args)
    await second.waitFor(/"event":"listening"/)
    expect(events(second, "leftover")[0]).toMatchObject({ level: "warn", cgroup: cgroup.path, count: 1 })
    expect(alive(daemon)).toBe(false)
    await expectCgroupGone(cgroup)
    const reply = await get({ socketPath: first.socketPath })
    expect(reply.listenFds).toBe(1)
  })
})

describeAsRoot("without cgroups (soad as an unprivileged user)", () => {
  it("fault: soad is killed with SIGKILL; promise: soad-guard kills the app's whole process group, children included", async () => {
    const d = dir()
    Fs.chmodSync(d, 0o777)
    const socketPath = Path.join(d, "app.sock")
    const childFile = Path.join(d, "child.pid")
    // soad as nobody: it may create no cgroup, so it falls back to the process group and the guard.
    const s = soad([
      "-s", socketPath, "--control", Path.join(d, "control.sock"), "--",
      process.execPath, appFixture, "--child", "--child-pid-file", childFile
    ], { setpriv: ["--reuid=65534", "--regid=65534", "--clear-groups"] })
    const line = await s.waitFor(/containment/)
    expect(line).toContain("process group + guard")
    const reply = await get({ socketPath })
    const child = Number(Fs.readFileSync(childFile, "utf8"))
    strays.push(reply.pid as number, child)
    expect(alive(child)).toBe(true)
    s.process.kill("SIGKILL")
    await s.exited
    // The app dies by its parent-death signal; its child has none: only the guard reaches it.
    await eventually(() => !alive(reply.pid as number) && !alive(child), 15_000, "the app and its child to die with soad")
  })

  it("fault: soad-guard is killed, then soad; promise: a new guard, given the app's process group, kills its children", async () => {
    const d = dir()
    Fs.chmodSync(d, 0o777)
    const socketPath = Path.join(d, "app.sock")
    const childFile = Path.join(d, "child.pid")
    const s = soad([
      "-s", socketPath, "--control", Path.join(d, "control.sock"), "--log-format", "json", "--",
      process.execPath, appFixture, "--child", "--child-pid-file", childFile
    ], { setpriv: ["--reuid=65534", "--regid=65534", "--clear-groups"] })
    await s.waitFor(/"event":"containment"/)
    expect(events(s, "containment")[0]).toMatchObject({ guarantee: "process group + guard" })
    const reply = await get({ socketPath })
    const child = Number(Fs.readFileSync(childFile, "utf8"))
    strays.push(reply.pid as number, child)
    const guard = events(s, "containment")[0]!.guard_pid as number
    process.kill(guard, "SIGKILL")
    await s.waitFor(/"event":"guard_restarted"/)
    expect(events(s, "guard_died")[0]).toMatchObject({ level: "error", guard_pid: guard, signal: "SIGKILL", entries: 1 })
    expect(events(s, "guard_restarted")[0]).toMatchObject({ previous_guard_pid: guard, entries: 1 })
    s.process.kill("SIGKILL")
    await s.exited
    await eventually(() => !alive(reply.pid as number) && !alive(child), 5000, "the new guard to kill the app's group")
  })
})
