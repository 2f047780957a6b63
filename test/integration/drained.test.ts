/**
 * awaitDrained (src/native/poll.c), with real sockets in this process: while a started app has not accepted what
 * woke it, soad looks in C whether a connection is still pending on its listeners, and hears once, when none is.
 * Also SocketService.awaitAccepting of the live layer, which waits on it.
 */
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { native } from "../../src/os/native.js"
import { eventually, sleep, tempDirs } from "../harness.js"

const dir = tempDirs()

const opened: Array<number> = []
const clients: Array<Net.Socket> = []
afterEach(() => {
  for (const client of clients.splice(0)) client.destroy()
  for (const fd of opened.splice(0)) native().close(fd)
})

/** A listening UNIX socket of soad's kind (non-blocking, close-on-exec), and its path. */
const listener = () => {
  const path = Path.join(dir(), "l.sock")
  const { fd } = native().listenUnix(path, false, 16, 0o600, null, null)
  opened.push(fd)
  return { fd, path }
}

const connect = async (path: string) => {
  const client = Net.connect({ path })
  clients.push(client)
  await new Promise<void>((resolve, reject) => client.once("connect", resolve).once("error", reject))
  return client
}

describe("awaitDrained", () => {
  it("calls back once, with null, after the pending connection is accepted; not before", async () => {
    const n = native()
    const { fd, path } = listener()
    await connect(path)
    expect(n.pending(fd)).toBe(true)
    const calls: Array<string | null> = []
    n.awaitDrained([fd], 20, (error) => calls.push(error))
    await sleep(200)
    expect(calls).toEqual([]) // still pending: ten looks, no call
    const accepted = n.acceptConnection(fd)
    expect(accepted).not.toBeNull()
    opened.push(accepted!.fd)
    await eventually(() => calls.length > 0, 2_000, "the call")
    await sleep(100)
    expect(calls).toEqual([null]) // once
  })

  it("looks at every listener: pending on the second keeps it waiting", async () => {
    const n = native()
    const first = listener()
    const second = listener()
    await connect(second.path)
    const calls: Array<string | null> = []
    n.awaitDrained([first.fd, second.fd], 20, (error) => calls.push(error))
    await sleep(150)
    expect(calls).toEqual([])
    opened.push(n.acceptConnection(second.fd)!.fd)
    await eventually(() => calls.length > 0, 2_000, "the call")
    expect(calls).toEqual([null])
  })

  it("cancelled, it never calls back (and a cancel after the call does nothing)", async () => {
    const n = native()
    const { fd, path } = listener()
    await connect(path)
    const calls: Array<string | null> = []
    const id = n.awaitDrained([fd], 20, (error) => calls.push(error))
    n.cancelDrained(id)
    opened.push(n.acceptConnection(fd)!.fd)
    await sleep(150)
    expect(calls).toEqual([])
    n.cancelDrained(id)
  })

  it("a poll that fails calls back with what failed", async () => {
    const n = native()
    const { fd } = listener()
    const other = listener()
    const calls: Array<string | null> = []
    await connect(other.path)
    n.awaitDrained([fd, other.fd], 20, (error) => calls.push(error))
    n.close(fd)
    opened.splice(opened.indexOf(fd), 1)
    // fd (looked at first) is closed: other.fd stays pending, so only the failed poll can end the wait.
    await eventually(() => calls.length > 0, 2_000, "the call")
    expect(calls).toEqual([expect.stringContaining(`poll(fd ${fd})`)])
  })

  it("refuses what is not a list of fds, an interval under 1 ms, or more than 64 fds", () => {
    const n = native()
    const noop = () => {}
    expect(() => n.awaitDrained([], 20, noop)).toThrow(/awaitDrained/)
    expect(() => n.awaitDrained([3], 0, noop)).toThrow(/awaitDrained/)
    expect(() => n.awaitDrained([-1], 20, noop)).toThrow(/awaitDrained/)
    expect(() => n.awaitDrained(Array.from({ length: 65 }, () => 3), 20, noop)).toThrow(/awaitDrained/)
  })
})

describe("the live SocketService's awaitAccepting", () => {
  it("returns at once when nothing is pending, and once the app has accepted otherwise", async () => {
    const { SocketService, layer } = await import("../../src/SocketService.js")
    const n = native()
    const { fd, path } = listener()
    const sockets = await Effect.runPromise(Effect.provide(SocketService, layer))
    const listeners = [{ name: "l", fd, description: path, address: { _tag: "Unix", path } as const }]
    await Effect.runPromise(sockets.awaitAccepting(listeners)) // nothing pending: at once
    await connect(path)
    let done = false
    const waiting = Effect.runPromise(sockets.awaitAccepting(listeners)).then(() => (done = true))
    await sleep(150)
    expect(done).toBe(false)
    opened.push(n.acceptConnection(fd)!.fd)
    await waiting
    expect(done).toBe(true)
  })
})
