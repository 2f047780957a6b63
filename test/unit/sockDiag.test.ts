/**
 * The sock_diag reply decoders, on replies recorded from this kernel (test/fixtures/sockdiag/record.mjs sets up the
 * scene and records what soad asks), and on cut, garbled and hostile replies: each says what is wrong and never
 * reads past the end. Then what soad makes of the decoded sockets: counts, listeners, the fallback to /proc.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import fc from "fast-check"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { listeningFromInet, listeningFromUnix } from "../../src/os/appListening.js"
import { countTcpSockets, countUnixSockets, type Family, makeEstablished } from "../../src/os/connections.js"
import {
  decodeInet,
  decodeUnix,
  type InetSocket,
  makeAsker,
  portRanges,
  SockDiagError,
  TCP_ESTABLISHED,
  TCP_LISTEN
} from "../../src/os/sockDiag.js"
import { captureEvents } from "../../src/testing.js"

const fixture = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "sockdiag", "replies.json")
const recorded = JSON.parse(Fs.readFileSync(fixture, "utf8")) as Record<string, string> & {
  readonly scene: {
    readonly p4: number
    readonly p6: number
    readonly pm: number
    readonly path: string
    readonly abstract: string
    readonly listeners: Record<"v4" | "v6" | "dual" | "unix" | "abstract", number>
    readonly accepted: Record<"v4" | "v6" | "mapped" | "unix", number>
  }
}
const { scene } = recorded
const reply = (name: string) => Buffer.from(recorded[name]!, "hex")
const right = <A>(either: Either.Either<A, SockDiagError>): A => {
  if (Either.isLeft(either)) throw new Error(either.left.message)
  return either.right
}
const loopback6 = "0:0:0:0:0:0:0:1"
/** The kernel lists sockets in its hash order: compare them sorted by inode. */
const sorted = <A extends { readonly inode: number }>(sockets: ReadonlyArray<A>) => [...sockets].sort((a, b) => a.inode - b.inode)

describe("sock_diag replies recorded on Linux", () => {
  it("established TCP on one port: the accepted connection and the one still in the accept queue (inode 0), no client end", () => {
    expect(sorted(right(decodeInet(reply("established4"))))).toEqual([
      { family: "ipv4", state: TCP_ESTABLISHED, ip: "127.0.0.1", port: scene.p4, inode: 0 },
      { family: "ipv4", state: TCP_ESTABLISHED, ip: "127.0.0.1", port: scene.p4, inode: scene.accepted.v4 }
    ])
    expect(sorted(right(decodeInet(reply("established6"))))).toEqual([
      { family: "ipv6", state: TCP_ESTABLISHED, ip: loopback6, port: scene.p6, inode: 0 },
      { family: "ipv6", state: TCP_ESTABLISHED, ip: loopback6, port: scene.p6, inode: scene.accepted.v6 }
    ])
  })

  it("an IPv4 client of a dual-stack listener: an IPv6 socket whose address reads as IPv4", () => {
    expect(right(decodeInet(reply("establishedMapped")))).toEqual([
      { family: "ipv6", state: TCP_ESTABLISHED, ip: "127.0.0.1", port: scene.pm, inode: scene.accepted.mapped }
    ])
  })

  it("listeners: all of them, or one port's", () => {
    const v4 = right(decodeInet(reply("listen4")))
    const v6 = right(decodeInet(reply("listen6")))
    expect(v4.every((socket) => socket.state === TCP_LISTEN)).toBe(true)
    expect(v4).toContainEqual({ family: "ipv4", state: TCP_LISTEN, ip: "127.0.0.1", port: scene.p4, inode: scene.listeners.v4 })
    expect(v6).toContainEqual({ family: "ipv6", state: TCP_LISTEN, ip: loopback6, port: scene.p6, inode: scene.listeners.v6 })
    expect(v6).toContainEqual({ family: "ipv6", state: TCP_LISTEN, ip: "0:0:0:0:0:0:0:0", port: scene.pm, inode: scene.listeners.dual })
    expect(right(decodeInet(reply("listenPort4")))).toEqual([
      { family: "ipv4", state: TCP_LISTEN, ip: "127.0.0.1", port: scene.p4, inode: scene.listeners.v4 }
    ])
  })

  it("established UNIX sockets: the accepted one carries its listener's path; the pending one is not listed", () => {
    const sockets = right(decodeUnix(reply("unixEstablished")))
    expect(sockets.filter((socket) => socket.name === scene.path)).toEqual([
      { state: TCP_ESTABLISHED, inode: scene.accepted.unix, name: scene.path }
    ])
    expect(sockets.every((socket) => socket.state === TCP_ESTABLISHED && socket.inode > 0)).toBe(true)
    expect(sockets.some((socket) => socket.name === undefined)).toBe(true) // client ends, socketpairs
  })

  it("UNIX listeners, a path and an abstract name (@name)", () => {
    const sockets = right(decodeUnix(reply("unixListen")))
    expect(sockets).toContainEqual({ state: TCP_LISTEN, inode: scene.listeners.unix, name: scene.path })
    expect(sockets).toContainEqual({ state: TCP_LISTEN, inode: scene.listeners.abstract, name: scene.abstract })
  })
})

describe("what soad makes of them", () => {
  type Recorded = "established4" | "established6" | "establishedMapped"
  /** A kernel that answers each family with a recorded reply. */
  const kernel = (v4: Recorded | undefined, v6: Recorded | undefined) => {
    const asked: Array<{ family: Family; ranges: ReadonlyArray<number> }> = []
    const ask = (family: Family, ranges: ReadonlyArray<number>) => {
      asked.push({ family, ranges })
      const name = family === 4 ? v4 : v6
      return name === undefined ? Either.right<ReadonlyArray<InetSocket>>([]) : decodeInet(reply(name))
    }
    return { asked, ask }
  }

  it("counts the accepted TCP connection, not the one waiting in the accept queue", () => {
    const count = (family: "ipv4" | "ipv6", ip: string, port: number) => {
      const { ask } = kernel("established4", family === "ipv6" && port === scene.pm ? "establishedMapped" : "established6")
      return right(countTcpSockets([{ family, ip, port }], makeEstablished(ask, () => 0).on))
    }
    expect(count("ipv4", "127.0.0.1", scene.p4)).toBe(1)
    expect(count("ipv4", "0.0.0.0", scene.p4)).toBe(1)
    expect(count("ipv4", "127.0.0.2", scene.p4)).toBe(0)
    expect(count("ipv4", "127.0.0.1", scene.p6)).toBe(0) // another port's
    expect(count("ipv6", "::1", scene.p6)).toBe(1)
    expect(count("ipv6", "::", scene.pm)).toBe(1) // an IPv4 client of a dual-stack listener
  })

  it.effect("asks once per family for every port soad's listeners hold, and shares the answer for 50 ms", () =>
    Effect.scoped(Effect.gen(function*() {
      let now = 0
      const { ask, asked } = kernel("established4", "established6")
      const established = makeEstablished(ask, () => now)
      const v4 = { family: "ipv4", ip: "127.0.0.1", port: scene.p4 } as const
      const other = { family: "ipv4", ip: "127.0.0.1", port: 8080 } as const
      const v6 = { family: "ipv6", ip: "::1", port: scene.p6 } as const
      for (const listener of [v4, other, v6]) yield* established.track(listener)
      // Two services' looks (a scrape): one question for each family, over every tracked port of it.
      expect(right(countTcpSockets([v4], established.on))).toBe(1)
      expect(right(countTcpSockets([other], established.on))).toBe(0)
      expect(right(countTcpSockets([v6], established.on))).toBe(1)
      expect(asked).toEqual([
        { family: 4, ranges: [8080, 8080, scene.p4, scene.p4].sort((a, b) => a - b) },
        { family: 6, ranges: [scene.p6, scene.p6] }
      ])
      now = 51 // stale: asked again
      expect(right(countTcpSockets([v4, other], established.on))).toBe(1)
      expect(asked).toHaveLength(3)
      // A port soad does not hold (a caller of its own) is asked about alone, and not kept.
      expect(right(countTcpSockets([{ family: "ipv4", ip: "0.0.0.0", port: 9 }], established.on))).toBe(0)
      expect(asked[3]).toEqual({ family: 4, ranges: [9, 9] })
      expect(right(countTcpSockets([v4], established.on))).toBe(1)
      expect(asked).toHaveLength(4)
    })))

  it.effect("a listener opened or closed changes the question at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const { ask, asked } = kernel("established4", undefined)
      const established = makeEstablished(ask, () => 0) // the clock stands still: only the change asks again
      const v4 = { family: "ipv4", ip: "127.0.0.1", port: scene.p4 } as const
      yield* established.track(v4)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* established.track({ family: "ipv4", ip: "127.0.0.1", port: 8081 })
        expect(right(countTcpSockets([v4], established.on))).toBe(1)
      }))
      expect(right(countTcpSockets([v4], established.on))).toBe(1) // 8081 closed: asked again, without it
      expect(right(countTcpSockets([v4], established.on))).toBe(1) // and that answer is kept
      expect(asked.map((a) => a.ranges)).toEqual([[scene.p4, scene.p4, 8081, 8081].sort((a, b) => a - b), [scene.p4, scene.p4]])
    })))

  it("port ranges: adjacent ports join; past the limit the closest ranges join across their gaps", () => {
    expect(portRanges([])).toEqual([])
    expect(portRanges([80, 8080, 81, 82, 80])).toEqual([80, 82, 8080, 8080])
    expect(portRanges([1, 3, 10, 11, 20], 2)).toEqual([1, 11, 20, 20])
    expect(portRanges([1, 3, 10, 11, 20], 1)).toEqual([1, 20])
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 65535 }), { maxLength: 3000 }), fc.integer({ min: 1, max: 1024 }), (ports, max) => {
      const ranges = portRanges(ports, max)
      expect(ranges.length / 2).toBeLessThanOrEqual(max)
      for (const port of ports) {
        expect(ranges.some((_, i) => i % 2 === 0 && ranges[i]! <= port && port <= ranges[i + 1]!)).toBe(true)
      }
      for (let i = 2; i < ranges.length; i += 2) expect(ranges[i]!).toBeGreaterThan(ranges[i - 1]! + 1)
    }), { numRuns: 200 })
  })

  it("counts accepted UNIX connections by name", () => {
    const counts = countUnixSockets(right(decodeUnix(reply("unixEstablished"))))
    expect(counts.get(scene.path)).toBe(1)
    expect(counts.has(scene.abstract)).toBe(false)
    const pending = { state: TCP_ESTABLISHED, inode: 0, name: "/run/a.sock" } // never listed; not counted if it were
    const listener = { state: TCP_LISTEN, inode: 9, name: "/run/a.sock" }
    expect(countUnixSockets([pending, listener, { ...pending, inode: 10 }]).get("/run/a.sock")).toBe(1)
  })

  it("finds the listeners and their inodes, as from /proc", () => {
    expect(listeningFromInet(right(decodeInet(reply("listen6"))))).toContainEqual({
      inode: scene.listeners.dual,
      endpoint: { family: "ipv6", ip: "0:0:0:0:0:0:0:0", port: scene.pm }
    })
    const unix = listeningFromUnix(right(decodeUnix(reply("unixListen"))))
    expect(unix).toContainEqual({ inode: scene.listeners.unix, endpoint: { family: "unix", path: scene.path } })
    expect(unix).toContainEqual({ inode: scene.listeners.abstract, endpoint: { family: "unix", path: scene.abstract } })
  })

  it.effect("falls back to /proc once sock_diag fails, and says so once, at debug", () => {
    const { events, layer } = captureEvents()
    const ask = makeAsker(() => false)
    let asked = 0
    const failing = () => {
      asked++
      return Either.left(new SockDiagError({ message: "socket(NETLINK_SOCK_DIAG): Protocol not supported", errno: 93 }))
    }
    return Effect.gen(function*() {
      expect(yield* ask("unix", failing)).toBeUndefined()
      expect(yield* ask("unix", failing)).toBeUndefined()
      expect(yield* ask("tcp", () => Either.right(7))).toBe(7) // each kind on its own
      expect(asked).toBe(1)
      expect(events.filter((e) => e.name === "sock_diag_fallback")).toEqual([
        expect.objectContaining({ level: "DEBUG", fields: expect.objectContaining({ sockets: "unix", errno: 93 }) })
      ])
      expect(yield* makeAsker(() => true)("tcp", () => Either.right(7))).toBeUndefined() // SOAD_SOCK_DIAG=0
    }).pipe(Effect.provide(layer))
  })
})

/** A netlink message: header (length, type, flags, seq, pid) and payload, padded to 4 bytes. */
const message = (type: number, payload: Uint8Array, length = 16 + payload.length): Buffer => {
  const header = Buffer.alloc(16)
  header.writeUInt32LE(length, 0)
  header.writeUInt16LE(type, 4)
  const body = Buffer.concat([header, payload])
  return Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)])
}
const done = message(3, Buffer.alloc(4))
const unixMessage = (inode: number, attributes: Uint8Array = Buffer.alloc(0)) => {
  const head = Buffer.alloc(16)
  head.writeUInt8(1, 0) // AF_UNIX
  head.writeUInt8(TCP_ESTABLISHED, 2)
  head.writeUInt32LE(inode, 4)
  return message(20, Buffer.concat([head, attributes]))
}
const attribute = (type: number, data: Uint8Array, length = 4 + data.length) => {
  const head = Buffer.alloc(4)
  head.writeUInt16LE(length, 0)
  head.writeUInt16LE(type, 2)
  const body = Buffer.concat([head, data])
  return Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)])
}

describe("replies cut short, garbled or hostile", () => {
  const messageError = (decoded: Either.Either<unknown, SockDiagError>) =>
    Either.isLeft(decoded) ? decoded.left.message : "decoded"

  it("a reply without NLMSG_DONE is refused: it was cut short", () => {
    const whole = reply("established4")
    for (const cut of [0, 1, 15, 16, 72, 124, whole.length - 20, whole.length - 1]) {
      expect(messageError(decodeInet(whole.subarray(0, cut)))).not.toBe("decoded")
    }
  })

  it("a message that says it is longer than what is left, or shorter than its header", () => {
    expect(messageError(decodeInet(message(20, Buffer.alloc(72), 10_000)))).toMatch(/says it is 10000 bytes long/)
    expect(messageError(decodeInet(Buffer.concat([message(20, Buffer.alloc(72), 8), done])))).toMatch(/says it is 8 bytes long/)
    expect(messageError(decodeInet(Buffer.concat([message(20, Buffer.alloc(40)), done])))).toMatch(/an inet_diag_msg takes 72/)
    expect(messageError(decodeUnix(Buffer.concat([message(20, Buffer.alloc(8)), done])))).toMatch(/a unix_diag_msg takes 16/)
  })

  it("an attribute longer than its message, or shorter than its own header", () => {
    const long = unixMessage(5, attribute(0, Buffer.from("/a"), 200))
    expect(messageError(decodeUnix(Buffer.concat([long, done])))).toMatch(/attribute .* says it is 200 bytes long/)
    const zero = unixMessage(5, attribute(0, Buffer.alloc(4), 0))
    expect(messageError(decodeUnix(Buffer.concat([zero, done])))).toMatch(/says it is 0 bytes long/)
  })

  it("the kernel's error, a family that is not IP, unknown messages and attributes passed over", () => {
    const error = Buffer.alloc(4)
    error.writeInt32LE(-2)
    const failed = decodeInet(message(2, error))
    expect(Either.isLeft(failed) && failed.left.errno).toBe(2)
    const foreign = Buffer.alloc(72)
    foreign.writeUInt8(1, 0)
    expect(messageError(decodeInet(Buffer.concat([message(20, foreign), done])))).toMatch(/family 1/)
    const named = unixMessage(7, Buffer.concat([attribute(0x4005, Buffer.from("x")), attribute(0, Buffer.from("/run/x.sock\0"))]))
    expect(right(decodeUnix(Buffer.concat([message(99, Buffer.alloc(3)), named, done])))).toEqual([
      { state: TCP_ESTABLISHED, inode: 7, name: "/run/x.sock" }
    ])
    expect(right(decodeUnix(Buffer.concat([unixMessage(8, attribute(0, Buffer.from("\0ab\0c"))), done])))).toEqual([
      { state: TCP_ESTABLISHED, inode: 8, name: "@ab" }
    ])
  })

  it("property: any bytes decode to sockets or an error, never a throw, never more sockets than the bytes hold", () => {
    const anyBytes = fc.uint8Array({ maxLength: 2048 })
    // Shapes near valid ones: recorded replies with bytes overwritten, cut, or followed by more.
    const mutated = fc.tuple(
      fc.constantFrom("established4", "established6", "listen6", "unixEstablished", "unixListen"),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(),
      fc.uint8Array({ maxLength: 64 })
    ).map(([name, writes, cut, tail]) => {
      const bytes = Buffer.from(reply(name))
      for (const [at, value] of writes) bytes[at % bytes.length] = value
      return Buffer.concat([bytes.subarray(0, cut % (bytes.length + 1)), tail])
    })
    fc.assert(
      fc.property(fc.oneof(anyBytes, mutated), (bytes) => {
        const decoded: ReadonlyArray<Either.Either<ReadonlyArray<unknown>, SockDiagError>> = [decodeInet(bytes), decodeUnix(bytes)]
        for (const either of decoded) {
          if (Either.isRight(either)) expect(either.right.length).toBeLessThanOrEqual(bytes.length / 32)
          else expect(either.left).toBeInstanceOf(SockDiagError)
        }
      }),
      { numRuns: 2000 }
    )
  })

  it("a reply of 50,000 messages decodes whole (one pass: a quadratic walk would outlast the test's timeout)", () => {
    const many = Buffer.concat([...Array.from({ length: 50_000 }, (_, i) => unixMessage(i + 1)), done])
    const sockets = right(decodeUnix(many))
    expect(sockets).toHaveLength(50_000)
    expect(sockets[49_999]).toEqual({ state: TCP_ESTABLISHED, inode: 50_000, name: undefined })
  })
})
