/**
 * Accept mode's lane (src/native/lane.c through ProcessService.acceptLane), with real sockets and real processes in
 * this process: while a start is given the poll callback accepts, asks `admit`, and starts the instance with the
 * connection as fds 0, 1 and 3 and the peer's variables; without one, connections wait in the backlog; a refusal
 * closes the connection and keeps the start; a start that fails leaves the connection to the caller; an instance's
 * exit is reported with its pid once its cgroup is gone; a start not used is taken back; out of fds, an accept that
 * fails gives the start back and leaves the connection in the backlog.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { unitOf } from "../../src/core/lifecycle.js"
import * as Accept from "../../src/modes/accept.js"
import * as AppLogs from "../../src/observe/appLogs.js"
import * as Cgroup from "../../src/os/cgroup.js"
import { native } from "../../src/os/native.js"
import * as ProcessService from "../../src/ProcessService.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { alive, eventually, freePort, sleep, tempDirs } from "../harness.js"

const dir = tempDirs()

/**
 * The instance: one line with what it was given (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID and its pid, REMOTE_*, and
 * whether fds 0, 1 and 3 are one socket), then it waits for a line and exits with 3.
 */
const instance = `
same=no
[ "$(readlink /proc/$$/fd/0)" = "$(readlink /proc/$$/fd/3)" ] && [ "$(readlink /proc/$$/fd/1)" = "$(readlink /proc/$$/fd/3)" ] && same=yes
echo "$LISTEN_FDS $LISTEN_FDNAMES $LISTEN_PID $$ \${REMOTE_ADDR-none} \${REMOTE_PORT-none} $same"
read line
exit 3
`

interface Seen {
  readonly admitted: Array<{ readonly index: number; readonly peer: ProcessService.Peer }>
  readonly started: Array<ProcessService.App>
  readonly failed: Array<{ readonly error: ProcessService.SpawnError; readonly connection: ProcessService.HeldConnection }>
  readonly exited: Array<{ readonly pid: number; readonly status: ProcessService.ExitStatus }>
  readonly acceptFailed: Array<{ readonly index: number; readonly code: string }>
  /** What admit answers next. */
  admit: boolean
}

const scopes: Array<Scope.CloseableScope> = []
afterEach(async () => {
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void))
})

/** A lane on `listeners` for `command`, with the live ProcessService (cgroups and the guard where there are). */
const arm = async (listeners: ReadonlyArray<number>, command: readonly [string, ...Array<string>]) => {
  const scope = Effect.runSync(Scope.make())
  scopes.push(scope)
  const context = await Effect.runPromise(Layer.buildWithScope(ProcessService.layer, scope))
  const processes = context.unsafeMap.get(ProcessService.ProcessService.key) as ProcessService.ProcessService["Type"]
  const seen: Seen = { admitted: [], started: [], failed: [], exited: [], acceptFailed: [], admit: true }
  const config = ServiceConfig.make({ listeners: ["/run/lane.sock"], command, accept: true })
  const lane = await Effect.runPromise(Scope.extend(
    processes.acceptLane!(listeners, Accept.instanceRequest(config, { fd: -1 }), { signal: config.shutdownSignal, timeout: config.stopTimeout }, {
      admit: (index, peer) => {
        seen.admitted.push({ index, peer })
        return seen.admit
      },
      started: (app) => void seen.started.push(app),
      failed: (error, connection) => void seen.failed.push({ error, connection }),
      acceptFailed: (index, code) => void seen.acceptFailed.push({ index, code }),
      exited: (app, status) => void seen.exited.push({ pid: app.pid, status })
    }),
    scope
  ).pipe(Effect.provideService(AppLogs.AppLogs, AppLogs.inherit)))
  return { config, lane, seen }
}

/** A client whose lines are kept as they come. */
const client = (target: { readonly path: string } | { readonly host: string; readonly port: number }) => {
  const socket = Net.connect(target)
  const lines: Array<string> = []
  let closed = false
  let buffer = ""
  socket.on("data", (chunk) => {
    buffer += chunk.toString()
    for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
      lines.push(buffer.slice(0, at))
      buffer = buffer.slice(at + 1)
    }
  })
  socket.on("error", () => {})
  socket.on("close", () => (closed = true))
  return {
    socket,
    lines,
    get closed() {
      return closed
    }
  }
}

const unixListener = (path: string) => native().listenUnix(path, false, 16, 0o666, null, null).fd

describe("accept mode's lane (lane.c)", () => {
  it("out of fds, accepting fails: the start is the caller's again and the connection stays in the backlog, taken once fds are back", async () => {
    const d = dir()
    const path = Path.join(d, "lane.sock")
    const listener = unixListener(path)
    const { lane, seen } = await arm([listener], ["sh", "-c", instance])
    const c = client({ path })
    await eventually(() => native().pending(listener), 10_000, "the connection in the backlog")
    // Every fd number below the soft limit taken: spares held open, to be given back for prlimit to run again, and
    // whatever is free under the new limit filled.
    const spares = Array.from({ length: 16 }, () => Fs.openSync("/dev/null", "r"))
    const open = new Set(Fs.readdirSync("/proc/self/fd").map(Number))
    let lowest = 0
    while (open.has(lowest)) lowest++
    const hard = Fs.readFileSync("/proc/self/limits", "utf8").match(/Max open files\s+\d+\s+(\d+)/)![1]!
    ChildProcess.execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${lowest}:${hard}`])
    // Fds closed meanwhile (a child's pipes, a socket of Node's) would free a number: filled again till none does.
    const fill = () => {
      for (;;) {
        try {
          spares.push(Fs.openSync("/dev/null", "r"))
        } catch {
          return
        }
      }
    }
    for (let i = 0; i < 5; i++) {
      fill()
      await sleep(100)
    }
    try {
      fill()
      expect(lane.give()).toBeUndefined()
      await eventually(() => seen.acceptFailed.length === 1, 10_000, "the failed accept")
    } finally {
      for (const fd of spares) Fs.closeSync(fd)
      ChildProcess.execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${hard}:${hard}`])
    }
    expect(seen.acceptFailed).toEqual([{ index: 0, code: "EMFILE" }])
    expect(seen.admitted).toHaveLength(0)
    expect(c.closed).toBe(false)
    expect(native().pending(listener)).toBe(true)
    expect(lane.takeBack()).toBe(false) // nothing given any more
    expect(lane.give()).toBeUndefined()
    await eventually(() => c.lines.length > 0, 10_000, "the instance's line")
    c.socket.write("bye\n")
    await eventually(() => seen.exited.length === 1, 10_000, "the exit")
  })

  it("a start given: the connection is accepted, admitted and its instance started with it as fds 0, 1 and 3; the exit comes with the pid", async () => {
    const d = dir()
    const port = await freePort()
    const tcp = native().listenTcp("127.0.0.1", port, 16, false)
    const unix = unixListener(Path.join(d, "lane.sock"))
    const { config, lane, seen } = await arm([unix, tcp], ["sh", "-c", instance])
    expect(lane.give()).toBeUndefined()
    const c = client({ host: "127.0.0.1", port })
    await eventually(() => c.lines.length > 0, 10_000, "the instance's line")
    const pid = seen.started[0]!.pid
    expect(seen.admitted).toEqual([{ index: 1, peer: { remote: { ip: "127.0.0.1", port: c.socket.localPort } } }])
    expect(c.lines[0]).toBe(`1 connection ${pid} ${pid} 127.0.0.1 ${c.socket.localPort} yes`)
    // The start was used up: the next connection waits in the backlog, not accepted.
    const u = client({ path: Path.join(d, "lane.sock") })
    await sleep(300)
    expect(seen.admitted).toHaveLength(1)
    expect(native().pending(unix)).toBe(true)
    // Another start: a UNIX peer, its uid and no REMOTE_*.
    expect(lane.give()).toBeUndefined()
    await eventually(() => u.lines.length > 0, 10_000, "the second instance's line")
    expect(seen.admitted[1]).toEqual({ index: 0, peer: { uid: process.getuid!() } })
    const second = seen.started[1]!.pid
    expect(u.lines[0]).toBe(`1 connection ${second} ${second} none none yes`)
    // Each in a cgroup of its own, where soad can make them.
    const root = Cgroup.findRoot()
    if (root._tag === "Root") {
      const cgroupOf = (p: number) => Fs.readFileSync(`/proc/${p}/cgroup`, "utf8").trim()
      expect(cgroupOf(pid)).toContain(`/soad.${unitOf(config)}.${process.pid}`)
      expect(cgroupOf(second)).toContain(`/soad.${unitOf(config)}.${process.pid}`)
      expect(cgroupOf(second)).not.toBe(cgroupOf(pid))
    }
    // Exits: reported with their pid and status, once the instance and its cgroup are gone.
    c.socket.write("bye\n")
    u.socket.write("bye\n")
    await eventually(() => seen.exited.length === 2, 10_000, "both exits")
    expect(seen.exited.map((e) => e.pid).sort()).toEqual([pid, second].sort())
    expect(seen.exited.map((e) => e.status)).toEqual([{ code: 3, signal: null }, { code: 3, signal: null }])
    expect(alive(pid) || alive(second)).toBe(false)
    if (root._tag === "Root") {
      expect(Fs.readdirSync(root.dir).filter((name) => name.startsWith(`soad.${unitOf(config)}.${process.pid}`))).toEqual([])
    }
  })

  it("a refusal closes the connection at once and keeps the start for the next one; a start not used is taken back", async () => {
    const d = dir()
    const path = Path.join(d, "lane.sock")
    const { lane, seen } = await arm([unixListener(path)], ["sh", "-c", instance])
    expect(lane.give()).toBeUndefined()
    seen.admit = false
    const refused = client({ path })
    await eventually(() => refused.closed, 10_000, "the refused connection to be closed")
    expect(refused.lines).toEqual([])
    expect(seen.started).toHaveLength(0)
    seen.admit = true
    const served = client({ path })
    await eventually(() => served.lines.length > 0, 10_000, "the instance's line")
    expect(seen.admitted).toHaveLength(2)
    expect(seen.started).toHaveLength(1)
    // A start given and not used is taken back; none is given then.
    expect(lane.give()).toBeUndefined()
    expect(lane.takeBack()).toBe(true)
    expect(lane.takeBack()).toBe(false)
    const waiting = client({ path })
    await sleep(300)
    expect(seen.admitted).toHaveLength(2)
    expect(waiting.closed).toBe(false)
    served.socket.write("bye\n")
    await eventually(() => seen.exited.length === 1, 10_000, "the exit")
  })

  it("a start that fails (the command is no longer executable) leaves the connection open, the caller's to close", async () => {
    const d = dir()
    const path = Path.join(d, "lane.sock")
    const script = Path.join(d, "instance.sh")
    Fs.writeFileSync(script, `#!/bin/sh\n${instance}`, { mode: 0o755 })
    const { lane, seen } = await arm([unixListener(path)], [script])
    Fs.chmodSync(script, 0o644)
    expect(lane.give()).toBeUndefined()
    const c = client({ path })
    await eventually(() => seen.failed.length === 1, 10_000, "the failed start")
    expect(seen.started).toHaveLength(0)
    expect(seen.failed[0]!.error).toMatchObject({ code: "EACCES" })
    await sleep(200)
    expect(c.closed).toBe(false)
    seen.failed[0]!.connection.close()
    await eventually(() => c.closed, 10_000, "the connection to be closed")
  })

})
