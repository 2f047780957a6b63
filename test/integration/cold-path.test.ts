/**
 * The cold path with the real binding: an idle service's listeners are armed with the app's start, which the
 * first connection fires from the poll callback (no JS between the wake and the fork). What must hold: the app is
 * started that way and again after each idle stop; a start that fails there is reported as any failed start, with
 * its backoff, and soad serves once the cause is gone; the cgroup made ahead for the app (root) goes away with a
 * shutdown and with a kill -9 of soad.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Cgroup from "../../src/os/cgroup.js"
import { appFixture, describeAsRoot, eventually, get, soad, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()

/** The `started` events of a soad logging JSON. */
const startedEvents = (lines: ReadonlyArray<string>) =>
  lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((event) => event.event === "started")

describe("the cold path", () => {
  it("starts the app from the armed listener, and again after each idle stop", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.5", "--min-uptime", "0", "--log-format", "json", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    const first = await get({ socketPath })
    await s.waitFor(/"event":"stopped"|app exited/)
    const second = await get({ socketPath })
    expect(second.pid).not.toBe(first.pid)
    expect(second.listenPid).toBe(String(second.pid))
    await eventually(() => startedEvents(s.lines).length === 2, 15_000, "two started events")
    expect(startedEvents(s.lines)).toEqual([
      expect.objectContaining({ trigger: "connection", armed: true, pid: first.pid }),
      expect.objectContaining({ trigger: "connection", armed: true, pid: second.pid })
    ])
  })

  it("a start that fails at the connection is a failed start with its reason and backoff; soad serves once fixed", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const missing = Path.join(d, "not-yet")
    const config = writeConfig(d, `
[services.late]
listen = [${JSON.stringify(socketPath)}]
command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(appFixture)}]
cwd = ${JSON.stringify(missing)}
`)
    const s = soad(["-c", config])
    await s.waitFor(/listening on/)
    const reply = get({ socketPath }) // waits in the backlog
    await s.waitFor(/cannot start the app: the working directory .*not-yet does not exist/)
    expect(s.count(/app started/)).toBe(0)
    Fs.mkdirSync(missing)
    const served = await reply
    expect(served.listenFds).toBe(1)
    expect(s.count(/cannot start the app/)).toBeGreaterThanOrEqual(1)
  })
})

const root = process.platform === "linux" ? Cgroup.findRoot() : { _tag: "Unusable" as const, reason: "not Linux" }
const withCgroups = root._tag === "Root"
  ? describeAsRoot
  : (name: string, body: () => void) => describe.skip(`${name} [skipped: ${root._tag === "Unusable" ? root.reason : ""}]`, body)

withCgroups("the cold path's cgroup", () => {
  const armedDirs = (pid: number) =>
    root._tag === "Root" ? Fs.readdirSync(root.dir).filter((name) => name.startsWith("soad.") && name.endsWith(`.${pid}`)) : []

  it("exists while armed (soad holds no fd of it) and goes with a shutdown, and with a kill -9 of soad (the guard removes it)", async () => {
    if (root._tag !== "Root") return
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const socketPath = Path.join(dir(), "app.sock")
      const s = soad(["-s", socketPath, "-t", "30", "--", "node", appFixture])
      await s.waitFor(/listening on/)
      await eventually(() => armedDirs(s.pid).length === 1, 15_000, "the armed start's cgroup")
      // An armed service holds no fd: the cgroup is opened (and the log pipes made) only at the start.
      const cgroupDir = Path.join(root.dir, armedDirs(s.pid)[0]!)
      const fds = Fs.readdirSync(`/proc/${s.pid}/fd`).map((fd) => {
        try {
          return Fs.readlinkSync(`/proc/${s.pid}/fd/${fd}`)
        } catch {
          return ""
        }
      })
      expect(fds).not.toContain(cgroupDir)
      process.kill(s.pid, signal)
      await s.exited
      await eventually(() => armedDirs(s.pid).length === 0, 15_000, `no cgroup of soad's left after ${signal}`)
    }
  })
})
