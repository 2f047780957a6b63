/**
 * An app that does not take the socket it was given must not hang its clients: on TCP as on UNIX, a connection
 * that only waits in the accept queue is not "ready", so --start-timeout fires; and when the app listens on an
 * address of its own instead, soad says so and how to run it (proxy mode).
 */
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, appFixture, eventually, freePort, groupMembers, soad, tempDirs } from "../harness.js"

const dir = tempDirs()

/** A TCP client that connects and waits; resolves with how it ended. */
const hangingClient = (port: number) => {
  const socket = Net.connect(port, "127.0.0.1")
  socket.on("error", () => {})
  const ended = new Promise<string>((resolve) => {
    socket.on("close", () => resolve("closed"))
  })
  return { socket, ended }
}

describe("--start-timeout on TCP", () => {
  it("an app that never accepts fd 3 is stopped at the start timeout, and the backoff follows", async () => {
    // Fault: the app starts but never accepts; the client's connection waits in the accept queue, where
    // /proc/net/tcp shows it as established. Promise: that is not readiness; not_ready comes at ~1 s.
    const port = await freePort()
    const s = soad([
      "-l",
      `127.0.0.1:${port}`,
      "--start-timeout",
      "1",
      "--log-format",
      "json",
      "--",
      "node",
      appFixture,
      "--start-delay",
      "60000"
    ])
    await s.waitFor(/listening on/)
    const client = hangingClient(port)
    const started = JSON.parse(await s.waitFor(/"event":"started"/, 15_000)) as { pid: number }
    const notReady = JSON.parse(await s.waitFor(/"event":"not_ready"/, 15_000)) as { pid: number; start_timeout_ms: number }
    expect(notReady.pid).toBe(started.pid)
    expect(notReady.start_timeout_ms).toBe(1000)
    expect(s.count(/"event":"ready"/)).toBe(0)
    await s.waitFor(/"event":"failing"/, 15_000)
    expect(alive(started.pid)).toBe(false)
    client.socket.destroy()
  })
})

/** An app that ignores fd 3 and listens on an address of its own (`PORT` or a UNIX path), forever. */
const ownListener = (where: number | string) =>
  `require("net").createServer().listen(${typeof where === "number" ? `${where}, "127.0.0.1"` : JSON.stringify(where)})`

describe("an app that listens on its own address instead of taking fd 3", () => {
  it("is stopped at the start timeout, with a hint to run it in proxy mode", async () => {
    // Fault: the app binds 127.0.0.1:OWN itself (as a server without socket activation does) and never accepts on
    // fd 3. Promise: the start fails at --start-timeout, and soad says what the app listens on and what to do.
    const port = await freePort()
    const own = await freePort()
    const s = soad(["-l", `127.0.0.1:${port}`, "--start-timeout", "1", "--log-format", "json", "--", "node", "-e", ownListener(own)])
    await s.waitFor(/listening on/)
    const client = hangingClient(port)
    const started = JSON.parse(await s.waitFor(/"event":"started"/, 15_000)) as { pid: number }
    const hint = JSON.parse(await s.waitFor(/"event":"hint"/, 15_000)) as Record<string, unknown>
    expect(hint).toMatchObject({
      level: "warn",
      pid: started.pid,
      listens_on: `127.0.0.1:${own}`,
      upstream: `127.0.0.1:${own}`,
      message: `the app listens on 127.0.0.1:${own} itself instead of taking fd 3: ` +
        `if it cannot take a socket, run it in proxy mode with --upstream 127.0.0.1:${own}`
    })
    expect(s.count(/"event":"not_ready"/)).toBe(1)
    await eventually(() => !alive(started.pid), 15_000, "the app to stop")
    client.socket.destroy()
  })

  it("says so too when the app exits before it is ready, leaving a listening child in its group; UNIX listener", async () => {
    // Fault: a launcher script starts the real server in the background (it binds a UNIX path of its own) and exits.
    // Promise: the failed start names the server's own socket; the child is stopped with the group.
    const d = dir()
    const socketPath = Path.join(d, "soad.sock")
    const ownPath = Path.join(d, "own.sock")
    const script = `${JSON.stringify(process.execPath)} -e ${JSON.stringify(ownListener(ownPath))} & ` +
      `while [ ! -S ${JSON.stringify(ownPath)} ]; do sleep 0.05; done; exit 1`
    const s = soad(["-s", socketPath, "--log-format", "json", "--", "sh", "-c", script])
    await s.waitFor(/listening on/)
    const client = Net.connect(socketPath)
    client.on("error", () => {})
    const started = JSON.parse(await s.waitFor(/"event":"started"/, 15_000)) as { pid: number }
    const hint = JSON.parse(await s.waitFor(/"event":"hint"/, 15_000)) as Record<string, unknown>
    expect(hint).toMatchObject({ pid: started.pid, listens_on: ownPath, upstream: ownPath })
    expect(s.count(/"event":"exited"/)).toBe(1)
    await eventually(() => groupMembers(started.pid).length === 0, 15_000, "the app's group to be gone")
    client.destroy()
  })

  it("no hint for an app that never accepts but listens on nothing of its own", async () => {
    const port = await freePort()
    const s = soad(["-l", `127.0.0.1:${port}`, "--start-timeout", "1", "--", "node", appFixture, "--start-delay", "60000"])
    await s.waitFor(/listening on/)
    const client = hangingClient(port)
    await s.waitFor(/failing: next try in/, 15_000)
    expect(s.output()).not.toMatch(/itself instead of taking/)
    client.socket.destroy()
  })
})
