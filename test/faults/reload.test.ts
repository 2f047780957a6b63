/**
 * Fault: a valid config file whose changed listener cannot be bound (another process holds the new port).
 * Promise: the reload opens new listeners before it stops anything, so the service keeps running as it was (same
 * app, same listener, a request in flight answered), the log says it was kept and why; the rest of the file is
 * applied; a later reload, once the port is free, moves the service.
 */
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, appCommand, freePort, get, sleep, soad, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()

/** Another process holding a TCP port: a listener in the test's own process (not soad's). */
const holdPort = (port: number): Promise<Net.Server> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer((socket) => socket.destroy())
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => resolve(server))
  })

const refused = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", () => resolve(true))
  })

describe("a reload that cannot apply keeps what works", () => {
  it("a's new port is in use: a keeps its app and its old port, b is added, the log says why; a moves once the port is free", async () => {
    const d = dir()
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()]
    const service = (name: string, port: number) =>
      `[services.${name}]\nlisten = ["127.0.0.1:${port}"]\ncommand = [${appCommand}]\ntime-until-stop = 60\n`
    const path = writeConfig(d, service("a", p1))
    const s = soad(["-c", path, "--control", Path.join(d, "control.sock")])
    await s.waitFor(/listening on 127\.0\.0\.1:/)
    const before = await get({ host: "127.0.0.1", port: p1 })

    const blocker = await holdPort(p2)
    try {
      writeConfig(d, service("a", p2) + service("b", p3))
      // (a) a request in flight on a through the reload
      const inFlight = get({ host: "127.0.0.1", port: p1 }, "/?delay=1500")
      await sleep(100)
      s.process.kill("SIGHUP")
      const reloaded = await s.waitFor(/reloaded /)
      expect(reloaded).toContain(
        `reloaded ${path}: b added, a kept as it was (listener 127.0.0.1:${p2}: port ${p2} is already in use`
      )
      expect(s.output()).toMatch(
        new RegExp(`ERROR .*cannot apply the new config of a, it keeps running as it was: listener 127\\.0\\.0\\.1:${p2}: port ${p2} is already in use`)
      )
      expect((await inFlight).pid).toBe(before.pid)
      expect((await get({ host: "127.0.0.1", port: p1 })).pid).toBe(before.pid)
      expect(alive(before.pid as number)).toBe(true)
      // (b) b, whose listener opened, is added and serves
      expect((await get({ host: "127.0.0.1", port: p3 })).name).toBe("soad")
    } finally {
      await new Promise((resolve) => blocker.close(resolve))
    }

    // (c) the port is free: the next reload moves a, and its old port closes
    s.process.kill("SIGHUP")
    await s.waitFor(/reloaded .*: a restarted \(listen changed\), b unchanged$/)
    const after = await get({ host: "127.0.0.1", port: p2 })
    expect(after.pid).not.toBe(before.pid)
    expect(await refused(p1)).toBe(true)
  })

  it("a service that would take the listener of a service kept as it was is not started, and the log says so", async () => {
    const d = dir()
    const [p1, p2] = [await freePort(), await freePort()]
    const service = (name: string, port: number) =>
      `[services.${name}]\nlisten = ["127.0.0.1:${port}"]\ncommand = [${appCommand}]\ntime-until-stop = 60\n`
    const path = writeConfig(d, service("a", p1))
    const s = soad(["-c", path, "--control", Path.join(d, "control.sock")])
    await s.waitFor(/listening on 127\.0\.0\.1:/)
    const before = await get({ host: "127.0.0.1", port: p1 })
    const blocker = await holdPort(p2)
    try {
      // a moves to p2 (held) and b takes a's old port p1: a stays, so b must not share p1 with it.
      writeConfig(d, service("a", p2) + service("b", p1))
      s.process.kill("SIGHUP")
      const reloaded = await s.waitFor(/reloaded /)
      expect(reloaded).toMatch(/: a kept as it was \(listener .*\), b not started \(listener 127\.0\.0\.1:\d+ is still used by a, which was kept as it was\)$/)
      expect((await get({ host: "127.0.0.1", port: p1 })).pid).toBe(before.pid)
    } finally {
      await new Promise((resolve) => blocker.close(resolve))
    }
  })
})

describe("a reload applies in place what the running app does not see", () => {
  it("only time-until-stop changed: the app keeps running (same pid), the summary says updated, and the new -t applies", async () => {
    const d = dir()
    const socketPath = Path.join(d, "a.sock")
    const service = (t: number) => `[services.a]\nlisten = [${JSON.stringify(socketPath)}]\ncommand = [${appCommand}]\ntime-until-stop = ${t}\n`
    const path = writeConfig(d, service(600))
    const s = soad(["-c", path, "--control", Path.join(d, "control.sock")])
    await s.waitFor(/listening on/)
    const before = await get({ socketPath })
    writeConfig(d, service(1))
    s.process.kill("SIGHUP")
    await s.waitFor(/reloaded .*: a updated \(time-until-stop changed\)$/)
    expect(alive(before.pid as number)).toBe(true)
    expect((await get({ socketPath })).pid).toBe(before.pid)
    // The new -t: idle for 1 s, it stops (not after 600 s).
    await s.waitFor(/stopping the app \(pid \d+, idle for 1(\.\d+)? s\)/, 15_000)
    expect(s.count(/app started/)).toBe(1)
  })

  it("the command changed: the service restarts", async () => {
    const d = dir()
    const socketPath = Path.join(d, "a.sock")
    const service = (extra: string) => `[services.a]\nlisten = [${JSON.stringify(socketPath)}]\ncommand = [${appCommand}${extra}]\n`
    const path = writeConfig(d, service(""))
    const s = soad(["-c", path, "--control", Path.join(d, "control.sock")])
    await s.waitFor(/listening on/)
    await get({ socketPath })
    writeConfig(d, service(`, "--child"`))
    s.process.kill("SIGHUP")
    await s.waitFor(/reloaded .*: a restarted \(command changed\)$/)
  })
})
