/**
 * The lifecycle under stress, with real processes: open connections, the idle deadline race, crash loops,
 * stubborn apps, signals passed on, and soad killed outright.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, appFixture, cpuSeconds, eventually, get, groupMembers, sleep, soad, tempDirs } from "../harness.js"

const dir = tempDirs()

describe("idle that sees open connections", () => {
  it("a long request keeps the app past -t; it stops once that connection closes", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.5", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    const t0 = Date.now()
    const reply = await get({ socketPath }, "/?delay=3000") // the app holds this connection for 3 s
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3000)
    expect(s.count(/stopping the app/)).toBe(0)
    expect(s.output()).toMatch(/but 1 still open: the app stays until it closes/)
    await s.waitFor(/stopping the app/, 15_000)
    await eventually(() => !alive(reply.pid as number), 15_000, "the app to stop")
  })

  it("--idle-ignores-open-connections stops it at -t anyway (the original's rule)", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.5", "--idle-ignores-open-connections", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    const pending = get({ socketPath }, "/?delay=3000").catch((error: Error) => error)
    await s.waitFor(/stopping the app \(pid \d+, idle for 0\.50?\d* s\)/, 15_000)
    await pending
  })

  it("a connection that arrives just as the idle deadline comes is served, by this app or the next", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "-t", "0.3", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    let answered = 0
    for (let i = 0; i < 15; i++) {
      await get({ socketPath })
      answered++
      await sleep(290 + Math.random() * 20) // around the deadline, on either side
      await get({ socketPath })
      answered++
    }
    expect(answered).toBe(30)
    expect(s.count(/app started/)).toBeGreaterThanOrEqual(1)
  })
})

describe("failures", () => {
  it("an app that crashes at once is restarted only after the backoff; soad stays idle; waiting clients get served once it works", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const flag = Path.join(d, "crash")
    Fs.writeFileSync(flag, "")
    const s = soad(["-s", socketPath, "--max-backoff", "2", "--start-limit-burst", "0", "--", "node", appFixture, "--crash-if", flag]) // no start limit: retried for ever
    await s.waitFor(/listening on/)
    const cpu0 = cpuSeconds(s.pid)
    const waiting = get({ socketPath }, "/", 30_000) // waits in the backlog through every crash
    await sleep(6000)
    const starts = s.lines.filter((line) => /app started/.test(line)).map((line) => Date.parse(line.slice(0, 24)))
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!)
    // 0.5, 1, 2, 2 s (± 20 %, plus the app's own start): spaced, capped, never a loop
    expect(starts.length).toBeGreaterThanOrEqual(3)
    expect(starts.length).toBeLessThanOrEqual(6)
    expect(gaps[0]).toBeGreaterThanOrEqual(400)
    for (const gap of gaps.slice(2)) expect(gap).toBeGreaterThanOrEqual(1600)
    expect(s.output()).toMatch(/failing: next try in [\d.]+ s, \d+ failures in a row/)
    expect(cpuSeconds(s.pid) - cpu0).toBeLessThan(0.5) // soad itself: about nothing while the app crash-loops
    Fs.unlinkSync(flag)
    const reply = await waiting
    expect(reply.listenFds).toBe(1)
  })

  it("an app that never accepts is stopped at --start-timeout and counted as a failed start", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--start-timeout", "1", "--", "node", appFixture, "--start-delay", "60000"])
    await s.waitFor(/listening on/)
    const pending = get({ socketPath }, "/", 5000).catch((error: Error) => error)
    await s.waitFor(/the app \(pid \d+\) did not accept a connection within 1 s: stopping it/, 15_000)
    await s.waitFor(/failing: next try in/, 15_000)
    await pending
  })

  it("an app that ignores the shutdown signal is killed at the stop timeout, with its children", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const childPidFile = Path.join(d, "child.pid")
    const s = soad([
      "-s",
      socketPath,
      "-t",
      "0.3",
      "--stop-timeout",
      "1",
      "--",
      "node",
      appFixture,
      "--ignore-term",
      "--child",
      "--child-pid-file",
      childPidFile
    ])
    await s.waitFor(/listening on/)
    const pid = (await get({ socketPath })).pid as number
    await eventually(() => Fs.existsSync(childPidFile), 15_000, "the child")
    const child = Number(Fs.readFileSync(childPidFile, "utf8"))
    await s.waitFor(/did not exit within 1s of SIGTERM: sending SIGKILL/, 15_000)
    await s.waitFor(/app exited \(signal SIGKILL/, 15_000)
    await eventually(() => !alive(pid) && !alive(child), 15_000, "the app and its child to be gone")
    expect(groupMembers(pid)).toEqual([])
  })
})

describe("signals", () => {
  it("SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH are passed on to the app; soad and the app keep running", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const file = Path.join(d, "signals")
    const s = soad(["-s", socketPath, "--", "node", appFixture, "--signal-file", file])
    await s.waitFor(/listening on/)
    const pid = (await get({ socketPath })).pid as number
    for (const signal of ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"] as const) {
      s.process.kill(signal)
      await s.waitFor(new RegExp(`passing ${signal} on to the app`))
    }
    await eventually(() => Fs.existsSync(file) && Fs.readFileSync(file, "utf8").split("\n").length >= 5, 15_000, "signals")
    expect(Fs.readFileSync(file, "utf8").trim().split("\n").sort()).toEqual(["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"])
    expect(alive(s.pid)).toBe(true)
    expect((await get({ socketPath })).pid).toBe(pid)
  })

  it("SIGHUP with no app running does nothing", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--", "node", appFixture])
    await s.waitFor(/listening on/)
    s.process.kill("SIGHUP")
    await s.waitFor(/passing SIGHUP on to the app/)
    expect(alive(s.pid)).toBe(true)
  })

  it("soad killed with SIGKILL takes its app with it, and a new soad can bind the same socket", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const childPidFile = Path.join(d, "child.pid")
    const first = soad(["-s", socketPath, "--", "node", appFixture])
    await first.waitFor(/listening on/)
    const pid = (await get({ socketPath })).pid as number
    first.process.kill("SIGKILL")
    await first.exited
    await eventually(() => !alive(pid), 15_000, "the app to die with soad")
    expect(Fs.statSync(socketPath).isSocket()).toBe(true) // left behind by the killed soad: stale
    const second = soad(["-s", socketPath, "--", "node", appFixture, "--child-pid-file", childPidFile])
    await second.waitFor(/listening on/)
    expect((await get({ socketPath })).pid).not.toBe(pid)
  })
})
