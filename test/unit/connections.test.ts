import { describe, expect, it } from "vitest"
import { countTcp, countUnix, decodeIp, normalizeIp } from "../../src/os/connections.js"

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
    const tcp6 = "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 01 0 0 0 0 0 5 1"
    expect(countTcp(tcp6, [{ ip: "::", port: 8080 }])).toBe(1)
  })

  // Captured on Linux 6.x: a listener on 127.0.0.1:51119 (0xC7AF) with two clients, one accepted (inode 7713) and
  // one still in the accept queue (inode 0), plus the two client ends.
  const capturedTcp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   1: 0100007F:C7AF 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 7710 2 000000005b47ab9b 100 0 0 10 0",
    "   2: 0100007F:C7AF 0100007F:AF42 01 00000000:00000000 00:00000000 00000000     0        0 7713 1 000000005e67ad6c 20 0 0 10 -1",
    "   3: 0100007F:C7AF 0100007F:AF52 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000005a9af598 20 0 0 10 -1",
    "   4: 0100007F:AF42 0100007F:C7AF 01 00000000:00000000 00:00000000 00000000     0        0 7711 2 0000000070feccb9 20 0 0 10 -1",
    "   5: 0100007F:AF52 0100007F:C7AF 01 00000000:00000000 00:00000000 00000000     0        0 7712 2 00000000d50c036e 20 0 0 10 -1"
  ].join("\n")

  it("counts an accepted TCP connection, not one still waiting in the accept queue (established, inode 0)", () => {
    expect(countTcp(capturedTcp, [{ ip: "127.0.0.1", port: 0xC7AF }])).toBe(1)
    expect(countTcp(capturedTcp, [{ ip: "0.0.0.0", port: 0xC7AF }])).toBe(1)
    const onlyPending = capturedTcp.split("\n").filter((line) => !line.includes(" 7713 ")).join("\n")
    expect(countTcp(onlyPending, [{ ip: "127.0.0.1", port: 0xC7AF }])).toBe(0)
  })

  it("the same on IPv6 (captured /proc/net/tcp6, [::1]:53149)", () => {
    const tcp6 = [
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 00000000000000000000000001000000:CF9D 00000000000000000000000000000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 7720 2 000000001a93c048 100 0 0 10 0",
      "   1: 00000000000000000000000001000000:A87A 00000000000000000000000001000000:CF9D 01 00000000:00000000 00:00000000 00000000     0        0 7721 2 00000000c377441b 20 0 0 10 -1",
      "   2: 00000000000000000000000001000000:A88A 00000000000000000000000001000000:CF9D 01 00000000:00000000 00:00000000 00000000     0        0 7722 2 00000000a43b1d64 20 0 0 10 -1",
      "   3: 00000000000000000000000001000000:CF9D 00000000000000000000000001000000:A87A 01 00000000:00000000 00:00000000 00000000     0        0 7723 1 00000000d49867db 20 0 0 10 -1",
      "   4: 00000000000000000000000001000000:CF9D 00000000000000000000000001000000:A88A 01 00000000:00000000 00:00000000 00000000     0        0 0 1 00000000553abd4d 20 0 0 10 -1"
    ].join("\n")
    expect(countTcp(tcp6, [{ ip: "::1", port: 0xCF9D }])).toBe(1)
    expect(countTcp(tcp6, [{ ip: "::", port: 0xCF9D }])).toBe(1)
  })

  it("counts an accepted UNIX connection, not one waiting to be accepted (captured: St 02, inode 0)", () => {
    const unix = [
      "Num       RefCount Protocol Flags    Type St Inode Path",
      "00000000595a44da: 00000003 00000000 00000000 0001 03  7719 /tmp/cap-unix.sock",
      "00000000e4736bd8: 00000002 00000000 00010000 0001 01  7716 /tmp/cap-unix.sock",
      "000000004e72f633: 00000003 00000000 00000000 0001 02     0 /tmp/cap-unix.sock"
    ].join("\n")
    expect(countUnix(unix, new Set(["/tmp/cap-unix.sock"]))).toBe(1)
    // Whatever its state says, a socket with no inode was not accepted.
    expect(countUnix(unix.replace(" 02     0 ", " 03     0 "), new Set(["/tmp/cap-unix.sock"]))).toBe(1)
  })
})
