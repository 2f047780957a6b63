/**
 * A busy host: 20,000 other TCP sockets and 2,000 UNIX ones open while soad watches its apps (the sockets of a
 * web server's clients). soad asks the kernel only about its own ports (sock_diag), so its counts stay right and
 * it reads no socket table of the host: /proc/net/tcp is about 3 MB here, and soad's read bytes (rchar in
 * /proc/PID/io, which counts read(2) but not the netlink replies of recvmsg) show whether it read it. With
 * SOAD_SOCK_DIAG=0 soad reads /proc/net as before, and the same counts come out.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { alive, appFixture, eventually, freePort, get, root, soad, tempDir, tempDirs } from "../harness.js"
import { type HostSockets, hostSockets } from "../hostSockets.js"

const plainApp = Path.join(root, "test", "fixtures", "plain-app.mjs")
const dir = tempDirs()

/** Bytes soad has read with read(2) and the like since it started. */
const readBytes = (pid: number): number => Number(/^rchar: (\d+)$/m.exec(Fs.readFileSync(`/proc/${pid}/io`, "utf8"))![1])

/**
 * Far more than soad reads of its own meanwhile (0 to 20 bytes measured: its app's output) and far less than one
 * read of the host's table (/proc/net/unix with 2,000 sockets: 800 KB; /proc/net/tcp{,6}: 24 MB in one test).
 */
const noTable = 64 * 1024

let host: HostSockets
let hostDir: string
beforeAll(async () => {
  hostDir = tempDir()
  host = await hostSockets({ root, dir: hostDir, tcp: 20_000, unix: 2_000 })
}, 120_000)
afterAll(async () => {
  await host?.stop()
  Fs.rmSync(hostDir, { recursive: true, force: true })
})

/** A held request (the app answers after 3 s) through a TCP listener with -t 0.5; what soad read meanwhile. */
const longRequest = async (env: NodeJS.ProcessEnv) => {
  const port = await freePort()
  const s = soad(["-l", `127.0.0.1:${port}`, "-t", "0.5", "--log-format", "json", "--", "node", appFixture], { env })
  await s.waitFor(/"event":"listening"/)
  await get({ host: "127.0.0.1", port }) // the app runs
  const before = readBytes(s.pid)
  const reply = await get({ host: "127.0.0.1", port }, "/?delay=3000")
  const read = readBytes(s.pid) - before
  const open = JSON.parse(await s.waitFor(/"event":"open_connections"/)) as Record<string, unknown>
  await s.waitFor(/"event":"stopping"/, 5000)
  await eventually(() => !alive(reply.pid as number), 5000, "the app to stop")
  return { open, read }
}

describe("a busy host (20,000 TCP and 2,000 UNIX sockets of others)", () => {
  it("the host's sockets are there", () => {
    expect(host.tcp).toBeGreaterThanOrEqual(10_000) // fewer only where the fd limits forbid them
    expect(Fs.statSync("/proc/net/tcp").isFile()).toBe(true)
  })

  it("an accepted TCP connection held open keeps the app past -t; soad sees it without reading /proc/net", async () => {
    const { open, read } = await longRequest(process.env)
    expect(open).toMatchObject({ level: "info", open: 1 })
    expect(read).toBeLessThan(noTable)
  })

  it("the same on a UNIX socket, among the host's UNIX connections", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.5", "--log-format", "json", "--", "node", appFixture])
    await s.waitFor(/"event":"listening"/)
    await get({ socketPath })
    const before = readBytes(s.pid)
    const reply = await get({ socketPath }, "/?delay=3000")
    const read = readBytes(s.pid) - before
    expect(JSON.parse(await s.waitFor(/"event":"open_connections"/))).toMatchObject({ open: 1 })
    await s.waitFor(/"event":"stopping"/, 5000)
    await eventually(() => !alive(reply.pid as number), 5000, "the app to stop")
    expect(read).toBeLessThan(noTable)
  })

  it("a connection still in the accept queue is not taken for an accepted one: an app that never accepts fails its start", async () => {
    const port = await freePort()
    const s = soad(["-l", `127.0.0.1:${port}`, "--start-timeout", "3", "--log-format", "json", "--", "node", appFixture, "--start-delay", "60000"])
    await s.waitFor(/"event":"listening"/)
    const client = Net.connect(port, "127.0.0.1")
    client.on("error", () => {})
    await s.waitFor(/did not accept a connection within 3 s/, 10_000)
    expect(s.count(/"event":"ready"/)).toBe(0)
    client.destroy()
  })

  it("proxy mode: the app's own port is seen once it binds (after 2 s), without reading /proc/net", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const upstream = await freePort()
    const s = soad(["-s", socketPath, "--upstream", `127.0.0.1:${upstream}`, "--log-format", "json", "--", "node", plainApp, "--port", String(upstream), "--delay", "2000"])
    await s.waitFor(/"event":"listening"/)
    const before = readBytes(s.pid)
    const reply = await get({ socketPath }, "/", 20_000)
    expect(reply).toMatchObject({ port: upstream })
    expect(readBytes(s.pid) - before).toBeLessThan(noTable)
  })

  it("SOAD_SOCK_DIAG=0: the same count from /proc/net, which soad then reads (the fallback, and what this test measures)", async () => {
    const { open, read } = await longRequest({ ...process.env, SOAD_SOCK_DIAG: "0" })
    expect(open).toMatchObject({ open: 1 })
    expect(read).toBeGreaterThan(noTable)
  })
})
