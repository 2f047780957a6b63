import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Control from "../../src/observe/control.js"
import { peerAllowed } from "../../src/observe/control.js"

describe("who may use the control socket", () => {
  const peer = (uid: number) => ({ pid: 1234, uid, gid: uid })

  it("allows soad's own user and root", () => {
    expect(peerAllowed(peer(1000), 1000)).toBe(true)
    expect(peerAllowed(peer(0), 1000)).toBe(true)
    expect(peerAllowed(peer(0), 0)).toBe(true)
  })

  it("refuses any other user, also when soad runs as root", () => {
    expect(peerAllowed(peer(65534), 1000)).toBe(false)
    expect(peerAllowed(peer(65534), 0)).toBe(false)
    expect(peerAllowed(peer(1001), 1000)).toBe(false)
  })

  it("fails closed: a peer whose credentials cannot be read is refused, whoever soad runs as", () => {
    expect(peerAllowed(undefined, 0)).toBe(false)
    expect(peerAllowed(undefined, 1000)).toBe(false)
  })
})

describe("the status table's saving", () => {
  it("shows PEAK and SAVED (MB·h, GB·h from 1,000), the last error and a total row", () => {
    const base = {
      pid: null, uptime_s: null, idle_s: null, memory_bytes: null, idle_stops: 0, crashes: 0, failed_starts: 0,
      listeners: ["/run/x.sock"], last_error: null, last_error_age_s: null
    }
    const text = Control.table([
      { ...base, name: "blog", state: "stopped", activations: 2, peak_memory_bytes: 80e6, saved_byte_seconds: 80e6 * 3600 * 30 },
      { ...base, name: "api", state: "failing", activations: 1, peak_memory_bytes: null, saved_byte_seconds: 0,
        last_error: "cannot start the app: x: not found", last_error_age_s: 5 }
    ])
    const lines = text.split("\n")
    expect(lines[0]).toMatch(/PEAK\s+SAVED\s+STARTS\s+LISTEN\s+LAST ERROR$/)
    expect(lines[1]).toMatch(/^blog\s+stopped\s+.*80M\s+2\.4 GB·h\s+2\s+\/run\/x\.sock\s+-$/)
    expect(lines[2]).toMatch(/^api\s+failing\s+.*\s0 MB·h\s+1\s+\/run\/x\.sock\s+5s ago: cannot start the app: x: not found$/)
    expect(lines[3]).toMatch(/^total\s+0 running\s+0M\s+2\.4 GB·h\s+3$/)
  })
})

describe("the status table's app status and instances", () => {
  const base = {
    pid: null, uptime_s: null, idle_s: null, memory_bytes: null, idle_stops: 0, crashes: 0, failed_starts: 0,
    listeners: ["/run/x.sock"], last_error: null, last_error_age_s: null, peak_memory_bytes: null, saved_byte_seconds: 0
  }

  it("shows a --ready notify app's STATUS= after its state, made safe for a terminal, and accept-mode instances", () => {
    // Fault: the STATUS= an app sent was only in --json, and the app (another user) chose its bytes: a terminal
    // escape in it would reach the operator's terminal. Promise: an APP STATUS column, control characters replaced,
    // long texts cut; an accept service shows its instances.
    const text = Control.table([
      { ...base, name: "web", state: "running", pid: 42, activations: 1, app_status: "Serving 4 workers" },
      { ...base, name: "evil", state: "running", pid: 43, activations: 1, app_status: "\u001b]0;owned\u0007\rx".padEnd(60, "y") },
      { ...base, name: "echo", state: "running", activations: 5, instances: 3 }
    ])
    const lines = text.split("\n")
    expect(lines[0]).toMatch(/^SERVICE\s+STATE\s+APP STATUS\s+PID\s/)
    expect(lines[1]).toMatch(/^web\s+running\s+Serving 4 workers\s+42\s/)
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/) // no control character but the newlines
    expect(lines[2]).toContain("\ufffd]0;owned\ufffd\ufffdx")
    expect(lines[2]).toMatch(/y…\s+43\s/)
    expect(lines[3]).toMatch(/^echo\s+running \(3 instances\)\s+-\s+-\s/)
    expect(lines[4]).toMatch(/^total\s+3 running\s/)
  })

  it("has no APP STATUS column when no app sent one", () => {
    const text = Control.table([{ ...base, name: "blog", state: "stopped", activations: 0 }])
    expect(text.split("\n")[0]).toMatch(/^SERVICE\s+STATE\s+PID\s/)
  })
})

describe("soad logs of every service", () => {
  it("takes the latest n lines of all the tails, oldest first, each with its tail: as sorting them all would", () => {
    // The reference: every line of every tail, stably sorted by time, the last n. `latest` must pick the same
    // lines (ties in any order across tails, in their tail's order within one).
    const tails = fc.array(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 12 }).map((times) => times.sort((a, b) => a - b)), { maxLength: 6 })
    fc.assert(
      fc.property(tails, fc.nat({ max: 40 }), (times, n) => {
        const lines = times.map((tail, i) => tail.map((time, at) => ({ time, tail: i, at })))
        const picked = Control.latest(lines, n)
        const all = lines.flat().sort((a, b) => a.time - b.time)
        expect(picked.length).toBe(Math.min(n, all.length))
        expect(picked.map(([, line]) => line.time)).toEqual(all.slice(all.length - picked.length).map((line) => line.time))
        expect(picked.map(([i, line]) => [i, line.tail])).toEqual(picked.map(([i]) => [i, i]))
        // within one tail, in its order, and its latest lines (a suffix of it); one expect each (2,000 runs)
        const mine = lines.map((_, i) => picked.filter(([j]) => j === i).map(([, line]) => line.at))
        expect(mine).toEqual(mine.map((ats, i) => Array.from({ length: ats.length }, (_, k) => lines[i]!.length - ats.length + k)))
      }),
      { numRuns: 2000 }
    )
  })
})
