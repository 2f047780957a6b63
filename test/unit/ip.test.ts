/**
 * config/ip.ts against node:net, the oracle it replaces in a run: the same answer for every text, from valid
 * addresses of each form to near misses (a group too long, `::` twice, a leading zero, a zone, a dotted quad
 * in the wrong place).
 */
import fc from "fast-check"
import * as Net from "node:net"
import { describe, expect, it } from "vitest"
import { isIPv4, isIPv6 } from "../../src/config/ip.js"

/** Text near the IP forms: their characters, groups and separators, in any order. */
const nearIp = fc.array(
  fc.oneof(
    fc.constantFrom(":", "::", ".", "%", "0", "00", "1", "01", "255", "256", "ffff", "FFFF", "12345", "g", "eth0", "-", "[", " "),
    fc.stringMatching(/^[0-9a-fA-F]{1,5}$/),
    fc.ipV4(),
    fc.ipV4Extended()
  ),
  { maxLength: 12 }
).map((parts) => parts.join(""))

const agrees = (text: string) => {
  expect(isIPv4(text), `isIPv4(${JSON.stringify(text)})`).toBe(Net.isIPv4(text))
  expect(isIPv6(text), `isIPv6(${JSON.stringify(text)})`).toBe(Net.isIPv6(text))
}

describe("IP address forms", () => {
  it("tell IPv4 and IPv6 as node:net does, over valid addresses, their zones and near misses", () => {
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV6(), nearIp), agrees), { numRuns: 20_000 })
    fc.assert(
      fc.property(fc.ipV6(), fc.stringMatching(/^[0-9a-zA-Z.:%-]{0,6}$/), (ip, zone) => agrees(`${ip}%${zone}`)),
      { numRuns: 2_000 }
    )
  })

  it("agree on the edges", () => {
    for (
      const text of [
        "", "0.0.0.0", "255.255.255.255", "256.0.0.0", "01.2.3.4", "1.2.3", "1.2.3.4.5", "::", "::1", "1::", "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1:2:3:4:5:6::7:8", "::ffff:1.2.3.4", "1.2.3.4::",
        "::1.2.3.4:5", "fe80::1%eth0", "fe80::1%", "fe80::1%%", "1:::2", ":1::2", "1::2:", "12345::", "::g", "1:2:3:4:5:6:1.2.3.4",
        "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4", "a:b:c:d:e:f:1.2.3.4", " ::1", "::1 "
      ]
    ) agrees(text)
  })
})
