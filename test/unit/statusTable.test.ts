/**
 * `soad status` at size: the summary line, the stopped services folded away beyond 50 rows (unless --all or a
 * pattern), patterns with * and ?, and the socket files' mode and owner of the services asked for by name.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { ServiceReport } from "../../src/observe/controlProtocol.js"
import * as StatusTable from "../../src/observe/statusTable.js"

const base: ServiceReport = {
  name: "x", state: "stopped", pid: null, uptime_s: null, idle_s: null, memory_bytes: null, activations: 0, idle_stops: 0,
  crashes: 0, failed_starts: 0, listeners: ["/run/x.sock"], peak_memory_bytes: null, saved_byte_seconds: 0,
  last_error: null, last_error_age_s: null
}

/** 1,000 services: s0 … s999, every 100th running, every 250th failing, the rest stopped; each saved 1 MB·h. */
const thousand: ReadonlyArray<ServiceReport> = Array.from({ length: 1000 }, (_, i) => ({
  ...base,
  name: `s${i}`,
  listeners: [`/run/s${i}.sock`],
  saved_byte_seconds: 1e6 * 3600,
  ...(i % 100 === 0
    ? { state: "running", pid: 1000 + i, uptime_s: 60, idle_s: 5, memory_bytes: 50e6 }
    : i % 250 === 1
    ? { state: "failing", last_error: "the app exited by itself", last_error_age_s: 3 }
    : {})
}))

describe("the summary line", () => {
  it("counts services by state, running first and failing last, with the memory in use and the RAM-time saved", () => {
    expect(StatusTable.summary(thousand)).toBe("1000 services: 10 running, 986 stopped, 4 failing; 500M in use, 1.0 GB·h saved")
    expect(StatusTable.summary([{ ...base, state: "starting" }])).toBe("1 service: 1 starting; 0M in use, 0 MB·h saved")
    expect(StatusTable.summary([])).toBe("0 services; 0M in use, 0 MB·h saved")
  })
})

describe("status at size", () => {
  it("beyond 50 services shows the ones not stopped and says how many stopped are left out and how to see them", () => {
    // Fault: 1,000 rows, the few that matter lost among them. Promise: a summary line first, then the running and
    // failing ones, then a line naming --all and a pattern.
    const lines = StatusTable.view(thousand, { all: false, patterns: [] }).split("\n")
    expect(lines[0]).toBe("1000 services: 10 running, 986 stopped, 4 failing; 500M in use, 1.0 GB·h saved")
    expect(lines[1]).toMatch(/^SERVICE\s+STATE\s+PID\s/)
    const rows = lines.slice(2, -2)
    expect(rows).toHaveLength(14)
    expect(rows.every((row) => /^s\d+\s+(running|failing)\s/.test(row))).toBe(true)
    expect(lines.at(-2)).toMatch(/^total\s+10 running\s/)
    expect(lines.at(-1)).toBe(
      "(986 stopped services not shown: soad status --all shows every one, soad status 'NAME*' those that match)"
    )
  })

  it("--all shows every service; 50 or fewer are all shown anyway", () => {
    expect(StatusTable.view(thousand, { all: true, patterns: [] }).split("\n")).toHaveLength(1 + 1 + 1000 + 1)
    const fifty = thousand.slice(1, 51)
    expect(StatusTable.view(fifty, { all: false, patterns: [] }).split("\n")).toHaveLength(1 + 1 + 50 + 1)
  })

  it("a pattern shows the services it matches, stopped or not, and their socket files", () => {
    const text = StatusTable.view(
      thousand.map((s) =>
        s.name === "s12"
          ? { ...s, sockets: [{ path: "/run/s12.sock", mode: "0660", uid: 33, gid: 33, user: "www-data", group: "www-data" }] }
          : s
      ),
      { all: false, patterns: ["s1?", "s999"] }
    )
    const lines = text.split("\n")
    expect(lines[0]).toMatch(/^1000 services: /) // the summary is of every service
    expect(lines.filter((line) => /^s\d+\s/.test(line)).map((line) => line.split(/\s+/)[0])).toEqual([
      "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s999"
    ])
    expect(text).not.toMatch(/not shown/)
    expect(text).toMatch(/^SOCKET FILE\s+SERVICE\s+MODE\s+OWNER\s+GROUP$/m)
    expect(text).toMatch(/^\/run\/s12\.sock\s+s12\s+0660\s+www-data\s+www-data$/m)
  })
})

describe("socket files", () => {
  it("shows names where known, else the numbers, and says when a file is gone or not soad's socket any more", () => {
    const text = StatusTable.socketFiles([
      { ...base, name: "a", sockets: [{ path: "/run/a.sock", mode: "0666", uid: 0, gid: 0, user: "root", group: "root" }] },
      { ...base, name: "b", sockets: [{ path: "/run/b.sock", mode: "0600", uid: 1234, gid: 5678 }] },
      { ...base, name: "c", sockets: [{ path: "/run/c.sock", problem: "gone" }, { path: "/run/d.sock", problem: "replaced" }] },
      { ...base, name: "tcp" }
    ])
    expect(text.split("\n")).toEqual([
      expect.stringMatching(/^SOCKET FILE\s+SERVICE\s+MODE\s+OWNER\s+GROUP$/),
      expect.stringMatching(/^\/run\/a\.sock\s+a\s+0666\s+root\s+root$/),
      expect.stringMatching(/^\/run\/b\.sock\s+b\s+0600\s+1234\s+5678$/),
      expect.stringMatching(/^\/run\/c\.sock\s+c\s+gone: no file at this path$/),
      expect.stringMatching(/^\/run\/d\.sock\s+c\s+replaced: the file there is not soad's socket$/)
    ])
    expect(StatusTable.socketFiles([{ ...base, name: "tcp" }])).toBe("")
  })
})

describe("patterns", () => {
  /** The reference: the pattern as an anchored regular expression. */
  const reference = (pattern: string, name: string) =>
    new RegExp(`^${[...pattern].map((c) => c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\-]/g, "\\$&")).join("")}$`, "s")
      .test(name)

  it("* matches any characters, ? one, anything else itself: as the regular expression would", () => {
    const chars = fc.constantFrom("a", "b", "-", ".", "*", "?")
    fc.assert(
      fc.property(fc.stringOf(chars, { maxLength: 12 }), fc.stringOf(fc.constantFrom("a", "b", "-", "."), { maxLength: 20 }), (pattern, name) => {
        expect(StatusTable.matches(pattern, name)).toBe(reference(pattern, name))
      }),
      { numRuns: 5000 }
    )
    expect(StatusTable.matches("blog*", "blog-staging")).toBe(true)
    expect(StatusTable.matches("blog", "blog-staging")).toBe(false)
    expect(StatusTable.matches(`${"*a".repeat(32)}b`, "a".repeat(64))).toBe(false) // the backtracking worst case
  })
})
