import { describe, expect, it } from "vitest"
import {
  formatEndpoint,
  hint,
  listeningTcp,
  listeningUnix,
  processGroup,
  socketInode,
  upstreamFor
} from "../../src/os/appListening.js"

// Captured on Linux 6.x. tcp: a listener on 127.0.0.1:51119 (inode 7710) with one accepted and one pending
// connection and the client ends, and a listener on 0.0.0.0:8000 (33047). tcp6: [::1]:53149 (7720) with its
// connections, and [::]:8001 (33048). unix: a listener, an accepted and a pending connection on one path, a
// listener on another path and an abstract one, and an unnamed connected socket.
const tcp = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   1: 0100007F:C7AF 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 7710 2 000000005b47ab9b 100 0 0 10 0",
  "   2: 0100007F:C7AF 0100007F:AF42 01 00000000:00000000 00:00000000 00000000     0        0 7713 1 000000005e67ad6c 20 0 0 10 -1",
  "   3: 0100007F:C7AF 0100007F:AF52 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000005a9af598 20 0 0 10 -1",
  "   4: 0100007F:AF42 0100007F:C7AF 01 00000000:00000000 00:00000000 00000000     0        0 7711 2 0000000070feccb9 20 0 0 10 -1",
  "   5: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 33047 1 0000000070feccb9 100 0 0 10 0"
].join("\n")
const tcp6 = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 00000000000000000000000001000000:CF9D 00000000000000000000000000000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 7720 2 000000001a93c048 100 0 0 10 0",
  "   1: 00000000000000000000000001000000:A87A 00000000000000000000000001000000:CF9D 01 00000000:00000000 00:00000000 00000000     0        0 7721 2 00000000c377441b 20 0 0 10 -1",
  "   3: 00000000000000000000000001000000:CF9D 00000000000000000000000001000000:A87A 01 00000000:00000000 00:00000000 00000000     0        0 7723 1 00000000d49867db 20 0 0 10 -1",
  "   0: 00000000000000000000000000000000:1F41 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 33048 1 000000001a93c048 100 0 0 10 0"
].join("\n")
const unix = [
  "Num       RefCount Protocol Flags    Type St Inode Path",
  "00000000595a44da: 00000003 00000000 00000000 0001 03  7719 /tmp/cap-unix.sock",
  "00000000e4736bd8: 00000002 00000000 00010000 0001 01  7716 /tmp/cap-unix.sock",
  "000000004e72f633: 00000003 00000000 00000000 0001 02     0 /tmp/cap-unix.sock",
  "00000000e0ab8848: 00000002 00000000 00010000 0001 01 33049 /tmp/cap-own.sock",
  "0000000074a50e0a: 00000002 00000000 00010000 0001 01 33050 @cap-abstract",
  "00000000751eb2f9: 00000003 00000000 00000000 0001 03  7717"
].join("\n")

describe("what an app listens on by itself, from /proc", () => {
  it("finds the TCP listeners (st 0A) with their inodes, not the connections", () => {
    expect(listeningTcp(tcp)).toEqual([
      { inode: 7710, endpoint: { family: "ipv4", ip: "127.0.0.1", port: 51119 } },
      { inode: 33047, endpoint: { family: "ipv4", ip: "0.0.0.0", port: 8000 } }
    ])
    expect(listeningTcp(tcp6)).toEqual([
      { inode: 7720, endpoint: { family: "ipv6", ip: "0:0:0:0:0:0:0:1", port: 53149 } },
      { inode: 33048, endpoint: { family: "ipv6", ip: "0:0:0:0:0:0:0:0", port: 8001 } }
    ])
  })

  it("finds the UNIX listeners (__SO_ACCEPTCON, St 01) that have a path, not the connections", () => {
    expect(listeningUnix(unix)).toEqual([
      { inode: 7716, endpoint: { family: "unix", path: "/tmp/cap-unix.sock" } },
      { inode: 33049, endpoint: { family: "unix", path: "/tmp/cap-own.sock" } },
      { inode: 33050, endpoint: { family: "unix", path: "@cap-abstract" } }
    ])
  })

  it("reads socket inodes from /proc/PID/fd links and the process group from /proc/PID/stat", () => {
    expect(socketInode("socket:[33047]")).toBe(33047)
    expect(socketInode("pipe:[33018]")).toBeUndefined()
    expect(socketInode("/dev/null")).toBeUndefined()
    expect(socketInode("/tmp/socket:[1]")).toBeUndefined()
    const stat = "15124 (python3) R 15121 15121 3157 0 -1 4194304 2952 6597 1 0 3 1 3 1 20 0 1 0 54939 17317888 3544"
    expect(processGroup(stat)).toBe(15121)
    // a command name may hold spaces and parentheses: the last ")" ends it
    expect(processGroup("42 (a) b (c)) S 1 40 40 0 -1")).toBe(40)
  })

  it("says where the app listens and what to give --upstream", () => {
    const loopback = { family: "ipv4", ip: "127.0.0.1", port: 8000 } as const
    expect(hint([loopback], 1).message).toBe(
      "the app listens on 127.0.0.1:8000 itself instead of taking fd 3: " +
        "if it cannot take a socket, run it in proxy mode with --upstream 127.0.0.1:8000"
    )
    expect(upstreamFor({ family: "ipv4", ip: "0.0.0.0", port: 8000 })).toBe("127.0.0.1:8000")
    expect(upstreamFor({ family: "ipv6", ip: "0:0:0:0:0:0:0:0", port: 8001 })).toBe("[::1]:8001")
    expect(formatEndpoint({ family: "ipv6", ip: "0:0:0:0:0:0:0:1", port: 8001 })).toBe("[::1]:8001")
    expect(formatEndpoint({ family: "ipv6", ip: "fe80:0:0:0:0:0:0:1", port: 80 })).toBe("[fe80::1]:80")
    const both = hint([{ family: "unix", path: "/run/app.sock" }, { family: "ipv4", ip: "0.0.0.0", port: 8000 }], 2)
    expect(both).toEqual({
      message: "the app listens on /run/app.sock, 0.0.0.0:8000 itself instead of taking fds 3-4: " +
        "if it cannot take a socket, run it in proxy mode with --upstream 127.0.0.1:8000",
      listensOn: "/run/app.sock, 0.0.0.0:8000",
      upstream: "127.0.0.1:8000"
    })
    expect(hint([{ family: "unix", path: "/run/app.sock" }], 1).upstream).toBe("/run/app.sock")
  })
})
