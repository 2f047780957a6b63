import { describe, expect, it } from "vitest"
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
