import { describe, expect, it } from "vitest"
import * as Control from "../../src/Control.js"
import { peerAllowed } from "../../src/Control.js"

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
