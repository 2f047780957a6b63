import { describe, expect, it } from "vitest"
import { countTcp, countUnix, decodeIp, normalizeIp } from "../../src/internal/connections.js"

describe("open connections from /proc/net", () => {
  it("counts accepted unix connections (St 03) on soad's paths, not pending ones (St 02) or the listener", () => {
    const table = [
      "Num       RefCount Protocol Flags    Type St Inode Path",
      "00000000a8a8b571: 00000002 00000000 00010000 0001 01 1611274 /run/app.sock",
      "0000000096c9182d: 00000003 00000000 00000000 0001 03 1611279 /run/app.sock",
      "00000000751eb2f5: 00000003 00000000 00000000 0001 03 1611278 /run/app.sock",
      "00000000751eb2f6: 00000003 00000000 00000000 0001 02       0 /run/app.sock",
      "00000000751eb2f7: 00000003 00000000 00000000 0001 03 1611280 /run/other.sock",
      "00000000751eb2f8: 00000003 00000000 00000000 0001 03 1611281 @abstract",
      "00000000751eb2f9: 00000003 00000000 00000000 0001 03 1611282"
    ].join("\n")
    expect(countUnix(table, new Set(["/run/app.sock"]))).toBe(2)
    expect(countUnix(table, new Set(["/run/app.sock", "@abstract"]))).toBe(3)
  })

  it("decodes /proc/net/tcp addresses, IPv4, IPv6 and IPv4-mapped", () => {
    expect(decodeIp("0100007F")).toBe("127.0.0.1")
    expect(decodeIp("00000000000000000000000001000000")).toBe(normalizeIp("::1"))
    expect(decodeIp("0000000000000000FFFF00000100007F")).toBe("127.0.0.1")
    expect(normalizeIp("::")).toBe("0:0:0:0:0:0:0:0")
    expect(normalizeIp("fe80::1")).toBe("fe80:0:0:0:0:0:0:1")
  })

  it("counts established TCP connections on a listener's port and address", () => {
    const tcp = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
      "   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1",
      "   2: 0100007F:1F90 0100007F:C351 06 00000000:00000000 00:00000000 00000000     0        0 0 1",
      "   3: 0200007F:1F90 0100007F:C352 01 00000000:00000000 00:00000000 00000000     0        0 3 1",
      "   4: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4 1"
    ].join("\n")
    // 8080 = 0x1F90: row 1 is ours; row 2 is TIME_WAIT; row 3 is on another address; row 4 is the client side
    expect(countTcp(tcp, [{ ip: "127.0.0.1", port: 8080 }])).toBe(1)
    expect(countTcp(tcp, [{ ip: "0.0.0.0", port: 8080 }])).toBe(2)
    const tcp6 = "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 01 0 0 0 0 0 0 5 1"
    expect(countTcp(tcp6, [{ ip: "::", port: 8080 }])).toBe(1)
  })
})
