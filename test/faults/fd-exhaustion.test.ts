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

/** Half-closes every client and waits for each to close: how many got no answer, and how many closes soad logged. */
const finish = async (s: Soad, clients: ReadonlyArray<ReturnType<typeof holdingClient>>) => {
  for (const client of clients) client.finish()
  const answers = await Promise.all(clients.map((client) => client.answer))
  const closed = [...events(s, "relay_failed"), ...events(s, "dropped")]
  return {
    unanswered: answers.filter((answer) => answer !== "got 9 bytes").length,
    logged: closed.reduce((sum, entry) => sum + (entry.connections as number), 0)
  }
}

describe("fault: out of file descriptors in proxy mode", () => {
  it("EMFILE while connections are held for a starting app does not spin: soad pauses accepting, logs fd_exhausted once, resumes by itself, and every client is answered or closed with a logged reason", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "--log-format", "json", "--log-level", "debug", "--", "node", plainApp, "--delay", "3500"])
    // After the start-up's memory went back (a full GC, which would be counted as CPU below).
    await s.waitFor(/"event":"settled"/, 15_000)
    limitFds(s.pid, fdCount(s.pid) + 12)
    const clients = Array.from({ length: 30 }, () => holdingClient(socketPath))
    await s.waitFor(/"event":"fd_exhausted"/)
    expect(events(s, "fd_exhausted")[0]).toMatchObject({ code: "EMFILE", syscall: expect.any(String), limit: expect.any(Number) })

    // Two seconds out of fds with clients in the backlog while the app starts: soad waits, it does not spin, and
    // it logs the episode once, not each of its attempts to resume.
    await sleep(200)
    const before = cpuSeconds(s.pid)
    await sleep(2000)
    expect(cpuSeconds(s.pid) - before).toBeLessThan(0.3)
    expect(events(s, "fd_exhausted")).toHaveLength(1)
    expect(events(s, "fd_recovered")).toHaveLength(0)

    // The app comes up, the clients finish, fds come back: soad resumes by itself.
    const { logged, unanswered } = await finish(s, clients)
    expect(unanswered).toBeLessThanOrEqual(logged) // every client closed without its answer was logged
    await eventually(() => events(s, "fd_recovered").length === events(s, "fd_exhausted").length, 15_000, "fd_recovered")
    expect((await get({ socketPath }, "/after")).url).toBe("/after")
  })

  it("relayed connections use up the fds: soad stops accepting (no accept-and-drop), and the clients that waited in the backlog are served once fds come back", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "-t", "60", "--log-format", "json", "--", "node", plainApp])
    await s.waitFor(/"event":"listening"/)
    // The app starts with soad's ordinary limit; then soad gets room for about four relays (six fds each).
    expect((await get({ socketPath })).url).toBe("/")
    await eventually(() => acceptedBy(s.pid, socketPath) === 0, 15_000, "the first connection to close")
    limitFds(s.pid, fdCount(s.pid) + 28)

    const clients = Array.from({ length: 30 }, () => holdingClient(socketPath))
    await s.waitFor(/"event":"fd_exhausted"/)
    await sleep(500)
    expect(clients.length - acceptedBy(s.pid, socketPath)).toBeGreaterThan(20) // waiting in the backlog

    const { logged, unanswered } = await finish(s, clients)
    expect(unanswered).toBeLessThanOrEqual(logged)
    expect(unanswered).toBeLessThan(clients.length / 2)
    await eventually(() => events(s, "fd_recovered").length === events(s, "fd_exhausted").length, 15_000, "fd_recovered")
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
    await eventually(() => acceptedBy(s.pid, socketPath) === 0, 15_000, "the connections to close")
  })
})

describe("fault: out of file descriptors in accept mode", () => {
  it("a connection taken when no fd is left for its instance is kept and served once fds are back; none is dropped, and it is no failed start", async () => {
    const socketPath = Path.join(dir(), "echo.sock")
    // Each instance echoes what it reads after a greeting: a client holding its connection holds an instance.
    const s = soad([
      "-s",
      socketPath,
      "--accept",
      "--max-connections",
      "200",
      "--log-format",
      "json",
      "--",
      "/bin/sh",
      "-c",
      "echo hi; exec cat"
    ])
    await s.waitFor(/listening/)
    const connect = () => {
      const socket = Net.connect({ path: socketPath })
      let received = ""
      socket.on("data", (chunk) => (received += chunk))
      socket.on("error", () => {})
      const closed = new Promise<string>((resolve) => socket.on("close", () => resolve(received)))
      return { socket, closed, received: () => received }
    }
    // One instance runs before fds are limited: whatever one start needs beyond what a running instance keeps, the
    // room below holds, so each instance that ends makes room for the next (the limit is measured, not guessed).
    const clients = [connect()]
    const greeted = () => clients.filter((client) => client.received().startsWith("hi")).length
    await eventually(() => greeted() === 1, 10_000, "the first instance's greeting")
    limitFds(s.pid, fdCount(s.pid) + 8)
    for (let i = 1; i < 12; i++) clients.push(connect())
    await eventually(() => events(s, "fd_exhausted").length === 1, 10_000, "fd_exhausted")
    const first = greeted()
    expect(first).toBeLessThan(clients.length)
    // Nobody was dropped: every client is still connected.
    for (const client of clients) expect(client.socket.destroyed).toBe(false)
    // Each greeted client leaves (its instance ends, and its fd is back); the others get their instances in turn.
    await eventually(() => {
      for (const client of clients) if (client.received().startsWith("hi")) client.socket.end()
      return greeted() === clients.length
    }, 20_000, "every client greeted")
    const answers = await Promise.all(clients.map((client) => client.closed))
    expect(answers.every((answer) => answer.startsWith("hi"))).toBe(true)
    expect(events(s, "start_failed")).toHaveLength(0)
    expect(events(s, "fd_recovered").length).toBeGreaterThanOrEqual(1)
  }, 45_000)
})
