/**
 * An app that does not take the socket it was given must not hang its clients: on TCP as on UNIX, a connection
 * that only waits in the accept queue is not "ready", so --start-timeout fires; and when the app listens on an
 * address of its own instead, soad says so and how to run it (proxy mode).
 */
import * as ChildProcess from "node:child_process"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, appFixture, freePort, soad, tempDirs } from "../harness.js"

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
    const started = JSON.parse(await s.waitFor(/"event":"started"/, 5000)) as { pid: number }
    const notReady = JSON.parse(await s.waitFor(/"event":"not_ready"/, 5000)) as { pid: number; start_timeout_ms: number }
    expect(notReady.pid).toBe(started.pid)
    expect(notReady.start_timeout_ms).toBe(1000)
    expect(s.count(/"event":"ready"/)).toBe(0)
    await s.waitFor(/"event":"failing"/, 5000)
    expect(alive(started.pid)).toBe(false)
    client.socket.destroy()
  })
})
