/**
 * takeInherited: LISTEN_* is checked before any fd is trusted, and always removed from soad's environment.
 */
import { describe, expect, it } from "vitest"
import { takeInherited } from "../../src/os/listeners.js"

const take = (env: NodeJS.ProcessEnv, limit?: number) => {
  const copy = { ...env }
  const inherited = takeInherited(copy, 4242, limit)
  return { ...inherited, left: Object.keys(copy).filter((key) => key.startsWith("LISTEN_")) }
}

describe("takeInherited", () => {
  it("valid: the fds from 3, with their names, and the variables removed", () => {
    expect(take({ LISTEN_FDS: "2", LISTEN_PID: "4242", LISTEN_FDNAMES: "web:admin" })).toEqual({
      fds: [{ fd: 3, name: "web" }, { fd: 4, name: "admin" }],
      invalid: undefined,
      left: []
    })
  })

  it("nothing given: no fds, nothing wrong", () => {
    expect(take({})).toEqual({ fds: [], invalid: undefined, left: [] })
  })

  it.each(["30000000", "4294967296", "-1", "abc", "1025", "1.5", "", " 1"])(
    "LISTEN_FDS=%j is refused without allocating anything, naming the bound",
    (count) => {
      const result = take({ LISTEN_FDS: count, LISTEN_PID: "4242" })
      expect(result.fds).toEqual([])
      expect(result.invalid).toContain(`LISTEN_FDS is ${JSON.stringify(count)}: expected a whole number from 0 to 1024`)
      expect(result.left).toEqual([])
    }
  )

  it("the bound is the open-file limit when it is lower", () => {
    expect(take({ LISTEN_FDS: "300", LISTEN_PID: "4242" }, 256).invalid).toMatch(/from 0 to 256 /)
    expect(take({ LISTEN_FDS: "1024", LISTEN_PID: "4242" }, 1_048_576).fds).toHaveLength(1024)
  })

  it("LISTEN_FDS without LISTEN_PID, or with another pid, is refused", () => {
    expect(take({ LISTEN_FDS: "1" }).invalid).toMatch(/^LISTEN_FDS is set without LISTEN_PID/)
    expect(take({ LISTEN_FDS: "1", LISTEN_PID: "1" }).invalid).toMatch(/^LISTEN_PID is "1", not soad's pid 4242/)
  })
})
