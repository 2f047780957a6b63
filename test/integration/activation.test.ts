/**
 * The whole path with the real layers: real sockets, the built soad, real child processes.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, appFixture, eventually, get, groupMembers, sleep, soad, tempDirs } from "../harness.js"

const dir = tempDirs()

describe("activation over a UNIX socket", () => {
  it("starts the app on the first connection with fd 3, LISTEN_FDS, LISTEN_FDNAMES and its own LISTEN_PID", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "30", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    expect(Fs.statSync(socketPath).isSocket()).toBe(true)
    expect(s.count(/app started/)).toBe(0) // nothing runs before a connection

    const reply = await get({ socketPath })
    expect(reply.listenPid).toBe(String(reply.pid)) // the strict app checked it too, or it would have exited
    expect(reply.listenFds).toBe(1)
    expect(reply.name).toBe("soad")
    expect(reply.fd).toBe(3)
    expect(reply.pgid).toBe(reply.pid) // its own process group
    const started = await s.waitFor(/app started/)
    expect(started).toMatch(new RegExp(`app started \\(pid ${reply.pid}, [\\d.]+ ms after the connection`))
  })

  it("the app gets no fd of soad's but 0, 1, 2 and the socket", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    // sleep opens nothing itself: its fds are exactly what it inherited
    const s = soad(["-s", socketPath, "--", "sleep", "30"])
    await s.waitFor(/listening on/)
    const client = Net.connect(socketPath)
    client.on("error", () => {})
    try {
      const started = await s.waitFor(/app started \(pid \d+/)
      const pid = Number(/pid (\d+)/.exec(started)![1])
      const fds = Fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b)
      expect(fds).toEqual([0, 1, 2, 3])
      expect(Fs.readlinkSync(`/proc/${pid}/fd/3`)).toMatch(/^socket:/)
      // Node raised soad's own soft limit to the hard one; the app gets select()'s 1024 back, as under systemd
      const limits = Fs.readFileSync(`/proc/${pid}/limits`, "utf8")
      const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)![1])
      expect(soft).toBeLessThanOrEqual(1024)
    } finally {
      client.destroy()
    }
  })

  it("stops the app when idle, starts it again on the next connection, and keeps it while requests come", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "1", "--", "node", appFixture])
    await s.waitFor(/listening on/)

    // Requests spaced under -t keep one app running; none is missed.
    const pids = new Set<unknown>()
    for (let i = 0; i < 8; i++) {
      pids.add((await get({ socketPath })).pid)
      await sleep(400)
    }
    expect(pids.size).toBe(1)
    const first = [...pids][0] as number
    expect(s.count(/stopping the app/)).toBe(0)

    // Then idle: stopped with SIGTERM about 1 s after the last request.
    await s.waitFor(/stopping the app \(pid \d+, idle for 1 s\) with SIGTERM/, 15_000)
    await s.waitFor(/app exited \(code 0, uptime/)
    await eventually(() => !alive(first), 15_000, "the app to exit")

    // The next connection starts a new one.
    const again = await get({ socketPath })
    expect(again.pid).not.toBe(first)
    expect(s.count(/app started/)).toBe(2)
  })

  it("answers every request sent while the app is stopping", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.5", "--", "node", appFixture, "--stop-delay", "700"])
    await s.waitFor(/listening on/)
    const first = await get({ socketPath })
    await s.waitFor(/stopping the app/, 15_000)
    // Sent as the stop begins: the old app may still take some. 0.3 s later it has stopped accepting and
    // takes 0.4 s more to exit: those wait in the backlog and the next app answers them.
    const early = Promise.all(Array.from({ length: 10 }, () => get({ socketPath })))
    await sleep(300)
    const late = await Promise.all(Array.from({ length: 20 }, () => get({ socketPath })))
    expect(await early).toHaveLength(10)
    expect(late).toHaveLength(20)
    for (const reply of late) expect(reply.pid).not.toBe(first.pid)
    expect(new Set(late.map((reply) => reply.pid)).size).toBe(1)
  })

  it("restarts an app that exits by itself on the next connection and logs how it exited", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const s = soad(["-s", socketPath, "-t", "30", "--min-uptime", "0", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    const first = await get({ socketPath })
    process.kill(first.pid as number, "SIGKILL")
    await s.waitFor(/app exited by itself \(signal SIGKILL, uptime/)
    const second = await get({ socketPath })
    expect(second.pid).not.toBe(first.pid)
  })

  it("on SIGTERM stops the app, removes its socket file and exits 0, leaving no process", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const childPidFile = Path.join(d, "child.pid")
    const s = soad(["-s", socketPath, "--", "node", appFixture, "--child", "--child-pid-file", childPidFile])
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath })
    const pid = reply.pid as number
    await eventually(() => Fs.existsSync(childPidFile), 15_000, "the app's child")
    const child = Number(Fs.readFileSync(childPidFile, "utf8"))
    expect(alive(child)).toBe(true)
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    expect(s.output()).toMatch(/soad is shutting down: stopping the app/)
    expect(alive(pid)).toBe(false)
    await eventually(() => !alive(child), 15_000, "the app's child to be killed with its group")
    expect(groupMembers(pid)).toEqual([])
    expect(Fs.existsSync(socketPath)).toBe(false)
  })

  it("a second SIGINT kills an app that ignores the shutdown signal at once", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--stop-timeout", "60", "--", "node", appFixture, "--ignore-term"])
    await s.waitFor(/listening on/)
    const pid = (await get({ socketPath })).pid as number
    s.process.kill("SIGINT")
    await s.waitFor(/soad is shutting down/)
    await sleep(300)
    expect(alive(pid)).toBe(true) // ignoring SIGTERM, within its 60 s
    const t0 = Date.now()
    s.process.kill("SIGINT")
    expect(await s.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(alive(pid)).toBe(false)
    expect(Fs.existsSync(socketPath)).toBe(false)
    expect(s.output()).toMatch(/app exited \(signal SIGKILL/)
  })

  it("kills an app that ignores the shutdown signal at the stop timeout", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.5", "--stop-timeout", "1", "--", "node", appFixture, "--ignore-term"])
    await s.waitFor(/listening on/)
    const pid = (await get({ socketPath })).pid as number
    await s.waitFor(/stopping the app/, 15_000)
    await s.waitFor(/did not exit within 1s of SIGTERM: sending SIGKILL/, 15_000)
    await s.waitFor(/app exited \(signal SIGKILL/, 15_000)
    expect(alive(pid)).toBe(false)
  })

  it("uses the shutdown signal given with -S", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.5", "-S", "int", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    await get({ socketPath })
    await s.waitFor(/stopping the app \(pid \d+, idle for [\d.]+ s\) with SIGINT/, 15_000)
    await s.waitFor(/app exited \(signal SIGINT/, 15_000)
  })

  it("keeps listening when the command cannot be run, and backs off instead of spinning", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--", "/nonexistent/app"])
    await s.waitFor(/listening on/)
    const client = Net.connect(socketPath)
    client.on("error", () => {})
    await s.waitFor(/cannot start the app: command not found: '\/nonexistent\/app'/)
    await sleep(2500)
    // 0.5, 1, 2 s (± 20 %): at most 3 attempts in 2.5 s, never a loop
    expect(s.count(/cannot start the app/)).toBeLessThanOrEqual(3)
    expect(s.count(/failing: next try in/)).toBeGreaterThanOrEqual(1)
    expect(alive(s.pid)).toBe(true)
    client.destroy()
  })
})
