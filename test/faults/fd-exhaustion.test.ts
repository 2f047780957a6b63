/**
 * Faults: soad runs out of file descriptors in proxy mode (--upstream). The limit is lowered for real on the
 * running soad (prlimit --nofile, the same as a low `ulimit -n`), and real clients hold real connections.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { cpuSeconds, eventually, get, root, sleep, type Soad, soad, tempDirs } from "../harness.js"

const plainApp = Path.join(root, "test", "fixtures", "plain-app.mjs")
const dir = tempDirs()

/** soad's open fds now. */
const fdCount = (pid: number) => Fs.readdirSync(`/proc/${pid}/fd`).length

/** Sets RLIMIT_NOFILE (soft and hard) of a running process. */
const limitFds = (pid: number, limit: number) =>
  ChildProcess.execFileSync("prlimit", ["--pid", String(pid), `--nofile=${limit}:${limit}`])

/** The parsed JSON log lines of this event. */
const events = (s: Soad, name: string) =>
  s.lines.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>
      return entry.event === name ? [entry] : []
    } catch {
      return []
    }
  })

/** Connections the client sockets soad accepted on `path` and still holds: its fds ∩ accepted sockets of `path`. */
const acceptedBy = (pid: number, path: string): number => {
  const accepted = new Set(
    Fs.readFileSync("/proc/net/unix", "utf8").split("\n").slice(1).flatMap((line) => {
      const fields = line.trim().split(/\s+/)
      return fields[5] === "03" && fields[7] === path ? [fields[6]] : []
    })
  )
  return Fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return accepted.has(/^socket:\[(\d+)\]$/.exec(Fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? "")
    } catch {
      return false
    }
  }).length
}

/**
 * A client that connects, sends a raw message and holds the connection until `finish()` half-closes it; `answer`
 * resolves with what it got back before the connection closed ("" if it was closed without an answer).
 */
const holdingClient = (path: string) => {
  const socket = Net.connect({ path, allowHalfOpen: true })
  socket.write("RAW hello")
  let received = ""
  socket.on("data", (chunk) => (received += chunk))
  const answer = new Promise<string>((resolve) => {
    socket.on("error", () => {})
    socket.on("close", () => resolve(received))
  })
  return { answer, finish: () => socket.end() }
}

describe("fault: out of file descriptors in proxy mode", () => {
  it("EMFILE with clients waiting does not spin: soad pauses accepting, logs fd_exhausted once per episode, recovers by itself, and no client is dropped silently", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "-t", "60", "--log-format", "json", "--", "node", plainApp])
    await s.waitFor(/"event":"listening"/)
    // The app starts with soad's ordinary limit; then soad gets room for about four relays (six fds each).
    expect((await get({ socketPath })).url).toBe("/")
    await eventually(() => acceptedBy(s.pid, socketPath) === 0, 5000, "the first connection to close")
    limitFds(s.pid, fdCount(s.pid) + 28)

    const clients = Array.from({ length: 30 }, () => holdingClient(socketPath))
    await s.waitFor(/"event":"fd_exhausted"/)
    expect(events(s, "fd_exhausted")[0]).toMatchObject({ code: "EMFILE", limit: expect.any(Number) })

    // (a) Two seconds out of fds with clients waiting in the backlog: soad waits, it does not spin, and it logs
    // the episode once, not each of its attempts to resume.
    await sleep(200)
    const before = cpuSeconds(s.pid)
    const lines = events(s, "fd_exhausted").length
    await sleep(2000)
    expect(cpuSeconds(s.pid) - before).toBeLessThan(0.3)
    expect(events(s, "fd_exhausted")).toHaveLength(lines)
    expect(events(s, "fd_recovered")).toHaveLength(lines - 1) // the episode goes on

    // (c) The clients finish: fds come back, soad resumes by itself and relays the ones that waited.
    for (const client of clients) client.finish()
    const answers = await Promise.all(clients.map((client) => client.answer))
    await eventually(() => events(s, "fd_recovered").length === events(s, "fd_exhausted").length, 5000, "fd_recovered")
    const unanswered = answers.filter((answer) => answer !== "got 9 bytes").length
    const logged = events(s, "relay_failed").reduce((sum, entry) => sum + (entry.connections as number), 0)
    expect(unanswered).toBeLessThanOrEqual(logged) // every client closed without its answer was logged
    expect(unanswered).toBeLessThan(clients.length / 2)
    expect((await get({ socketPath }, "/after")).url).toBe("/after")
  })

  it("--max-held: while the app starts soad holds at most N connections; the rest wait in the backlog and are all answered", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad([
      "-s",
      socketPath,
      "--upstream",
      "auto",
      "--max-held",
      "5",
      "--log-format",
      "json",
      "--",
      "node",
      plainApp,
      "--delay",
      "1500"
    ])
    await s.waitFor(/"event":"listening"/)
    const requests = Array.from({ length: 20 }, (_, i) => get({ socketPath }, `/${i}`))
    let most = 0
    const started = Date.now()
    while (Date.now() - started < 1200) {
      most = Math.max(most, acceptedBy(s.pid, socketPath))
      await sleep(20)
    }
    expect(most).toBeGreaterThan(0)
    expect(most).toBeLessThanOrEqual(5)
    expect(events(s, "held_full")[0]).toMatchObject({ max_held: 5 })
    const answers = await Promise.all(requests)
    expect(answers.map((answer) => answer.url)).toEqual(Array.from({ length: 20 }, (_, i) => `/${i}`))
    await eventually(() => acceptedBy(s.pid, socketPath) === 0, 5000, "the connections to close")
  })

  it("held connections that cannot all be relayed for want of fds when the app is up are closed with a logged reason, never dropped silently", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad([
      "-s",
      socketPath,
      "--upstream",
      "auto",
      "--max-held",
      "20",
      "--log-format",
      "json",
      "--",
      "node",
      plainApp,
      "--delay",
      "1000"
    ])
    await s.waitFor(/"event":"listening"/)
    // Room to hold 20 connections (one fd each), not to relay them all (six each).
    limitFds(s.pid, fdCount(s.pid) + 30)
    const clients = Array.from({ length: 20 }, () => holdingClient(socketPath))
    await s.waitFor(/"event":"ready"|"event":"started"/)
    await sleep(300)
    for (const client of clients) client.finish()
    const answers = await Promise.all(clients.map((client) => client.answer))
    const unanswered = answers.filter((answer) => answer !== "got 9 bytes").length
    await eventually(() => events(s, "relay_failed").length > 0, 5000, "relay_failed")
    const logged = events(s, "relay_failed").reduce((sum, entry) => sum + (entry.connections as number), 0)
    expect(unanswered).toBeGreaterThan(0) // the fault happened
    expect(logged).toBe(unanswered)
    expect(events(s, "relay_failed")[0]).toMatchObject({ code: "EMFILE" })
    expect((await get({ socketPath }, "/after")).url).toBe("/after")
  })
})
