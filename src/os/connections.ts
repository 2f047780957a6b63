/**
 * Open connections to soad's listeners (Linux): the accepted, still open server-side sockets that belong to a
 * listener, and whether an app listens on an address yet. Asked of the kernel (sock_diag, os/sockDiag.ts),
 * which filters by state and port, so soad reads and decodes only the sockets of its own ports however many the
 * host has; read from /proc/net, which lists every socket of the host, where the kernel cannot answer. Looked at
 * when an idle deadline comes (never while the app is busy), and while an app starts.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import { isIPv6 } from "../config/ip.js"
import { freshFor, memo, readFresh, realNow } from "./procfs.js"
import * as SockDiag from "./sockDiag.js"

/** What a listener is bound to, as getsockname says. */
export type Endpoint =
  | { readonly family: "unix"; readonly path: string }
  | { readonly family: "ipv4" | "ipv6"; readonly ip: string; readonly port: number }

/**
 * /proc/net/unix: accepted server-side sockets (St 03, inode not 0) on one of these paths (abstract ones as
 * "@name"). A connection still waiting to be accepted shows St 02 and inode 0: it is not counted.
 */
export const countUnix = (table: string, paths: ReadonlySet<string>): number => {
  let count = 0
  for (const line of table.split("\n")) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/)
    if (fields.length >= 8 && fields[5] === "03" && fields[6] !== "0" && paths.has(fields.slice(7).join(" "))) count++
  }
  return count
}

/** Decodes /proc/net/tcp{,6}'s hex address ("0100007F" or 32 hex digits in host-order words) to an IP. */
export const decodeIp = (hex: string): string => {
  const bytes: Array<number> = []
  for (let word = 0; word < hex.length; word += 8) {
    const value = hex.slice(word, word + 8)
    for (let i = 6; i >= 0; i -= 2) bytes.push(parseInt(value.slice(i, i + 2), 16)) // little-endian words
  }
  if (bytes.length === 4) return bytes.join(".")
  const isMapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff
  if (isMapped) return bytes.slice(12).join(".")
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return normalizeIp(groups.join(":"))
}

/** A canonical text form, so "::1" and "0:0:0:0:0:0:0:1" compare equal; IPv4-mapped IPv6 as IPv4. */
export const normalizeIp = (ip: string): string => {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped !== null) return mapped[1]!
  if (!isIPv6(ip)) return ip
  const [head, tail] = ip.includes("::") ? ip.split("::") as [string, string] : [ip, undefined]
  const left = head === "" ? [] : head.split(":")
  const right = tail === undefined || tail === "" ? [] : tail.split(":")
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0")
  return [...left, ...zeros, ...right].map((group) => parseInt(group, 16).toString(16)).join(":")
}

/** The wildcard address of either family: a listener there takes every address of its port. */
const anyAddress = (ip: string) => ip === "0.0.0.0" || normalizeIp(ip) === "0:0:0:0:0:0:0:0"

/**
 * /proc/net/tcp{,6}: accepted established connections (st 01, inode not 0) whose local end is one of these
 * listeners. A connection still in the accept queue is established too, but has inode 0 (no socket yet): counting
 * it would take an app that never accepts for one that does.
 */
export const countTcp = (
  table: string,
  listeners: ReadonlyArray<{ readonly ip: string; readonly port: number }>
): number => {
  let count = 0
  for (const line of table.split("\n")) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const fields = line.trim().split(/\s+/)
    if (fields.length < 10 || fields[3] !== "01" || fields[9] === "0") continue
    const [hexIp, hexPort] = fields[1]!.split(":") as [string, string | undefined]
    if (hexPort === undefined) continue
    const port = parseInt(hexPort, 16)
    const matching = listeners.filter((listener) => listener.port === port)
    if (matching.length === 0) continue
    const ip = decodeIp(hexIp)
    if (matching.some((listener) => anyAddress(listener.ip) || normalizeIp(listener.ip) === ip)) count++
  }
  return count
}

/** For counting, once per status request or scrape (see procfs). */
const read = readFresh

/** For watching an app come up: always read now. */
const readNow = (path: string): string => {
  try {
    return Fs.readFileSync(path, "utf8")
  } catch {
    return ""
  }
}

/** Can open connections be seen here? */
export const available = (): boolean => process.platform === "linux" && Fs.existsSync("/proc/net/unix")

/** Is a socket bound to `ip` one of these listeners' (all of one port)? */
const matchesAny = (listeners: ReadonlyArray<{ readonly ip: string }>, ip: string): boolean =>
  listeners.some((listener) => anyAddress(listener.ip) || normalizeIp(listener.ip) === ip)

/** A socket family as sock_diag takes it. */
export type Family = 4 | 6

/** The family of a listener's socket, which is also that of the connections it accepts ([::] takes IPv4 too). */
const familyOf = (endpoint: { readonly family: "ipv4" | "ipv6" }): Family => endpoint.family === "ipv4" ? 4 : 6

/** Established sockets by local port. */
export type ByPort = ReadonlyMap<number, ReadonlyArray<SockDiag.InetSocket>>

const byPort = (sockets: ReadonlyArray<SockDiag.InetSocket>): ByPort => {
  const ports = new Map<number, Array<SockDiag.InetSocket>>()
  for (const socket of sockets) {
    const list = ports.get(socket.port)
    if (list === undefined) ports.set(socket.port, [socket])
    else list.push(socket)
  }
  return ports
}

/**
 * The established TCP sockets on soad's listening ports, shared. Each question about established sockets walks
 * the kernel's whole table of them, whose size the kernel sets from the host's memory (262,144 buckets on this
 * 24 GB machine: 10 to 17 ms a walk, with 0 or 19,000 sockets in it), however narrow the filter. So soad asks
 * once for every port its listeners hold (`track`), and the answer serves every look within 50 ms: a status
 * request or a metrics scrape over a thousand services walks the table once, not a thousand times. A look at a
 * port soad does not hold asks about that port alone.
 */
export const makeEstablished = (
  ask: (family: Family, ranges: ReadonlyArray<number>) => Either.Either<ReadonlyArray<SockDiag.InetSocket>, SockDiag.SockDiagError>,
  now: () => number
) => {
  const tracked: Record<Family, Map<number, number>> = { 4: new Map(), 6: new Map() }
  let version = 0
  const kept: Record<Family, { at: number; version: number; sockets: Either.Either<ByPort, SockDiag.SockDiagError> } | undefined> = {
    4: undefined,
    6: undefined
  }
  const change = (family: Family, port: number, by: 1 | -1) => {
    const ports = tracked[family]
    const count = (ports.get(port) ?? 0) + by
    if (count > 0) ports.set(port, count)
    else ports.delete(port)
    version++
  }
  return {
    /** Keeps a listener's port in the shared question while the scope lasts. */
    track: (endpoint: Endpoint | undefined): Effect.Effect<void, never, Scope.Scope> =>
      endpoint === undefined || endpoint.family === "unix"
        ? Effect.void
        : Effect.acquireRelease(
          Effect.sync(() => change(familyOf(endpoint), endpoint.port, 1)),
          () => Effect.sync(() => change(familyOf(endpoint), endpoint.port, -1))
        ),
    /** The established sockets of `family` on `ports`, by port. */
    on: (family: Family, ports: ReadonlyArray<number>): Either.Either<ByPort, SockDiag.SockDiagError> => {
      const held = tracked[family]
      if (!ports.every((port) => held.has(port))) return Either.map(ask(family, SockDiag.portRanges(ports)), byPort)
      const at = now()
      const last = kept[family]
      if (last !== undefined && last.version === version && at - last.at <= freshFor) return last.sockets
      const sockets = Either.map(ask(family, SockDiag.portRanges(held.keys())), byPort)
      kept[family] = { at, version, sockets }
      return sockets
    }
  }
}

// Real time, not the Clock: it bounds how old an answer of the kernel may be, which no TestClock moves.
const established = makeEstablished(
  (family, ranges) => SockDiag.inetSockets(family, 1 << SockDiag.TCP_ESTABLISHED, ranges),
  realNow
)

/**
 * Keeps a listener's TCP port among those soad asks the kernel about while the scope lasts (SocketService.open
 * tracks each listener it opens).
 */
export const track = established.track

/**
 * From sock_diag: the accepted connections (established, with an inode) on these listeners' ports and addresses,
 * asked once per family of the listeners' sockets.
 */
export const countTcpSockets = (
  listeners: ReadonlyArray<{ readonly family: "ipv4" | "ipv6"; readonly ip: string; readonly port: number }>,
  on: (family: Family, ports: ReadonlyArray<number>) => Either.Either<ByPort, SockDiag.SockDiagError>
): Either.Either<number, SockDiag.SockDiagError> => {
  let count = 0
  for (const family of [4, 6] as const) {
    const mine = listeners.filter((listener) => familyOf(listener) === family)
    if (mine.length === 0) continue
    const ports = [...new Set(mine.map((listener) => listener.port))]
    const table = on(family, ports)
    if (Either.isLeft(table)) return Either.left(table.left)
    for (const port of ports) {
      const here = mine.filter((listener) => listener.port === port)
      for (const socket of table.right.get(port) ?? []) {
        if (socket.inode !== 0 && socket.port === port && matchesAny(here, socket.ip)) count++
      }
    }
  }
  return Either.right(count)
}

/** From sock_diag: how many accepted UNIX connections (established, with an inode) each name has. */
export const countUnixSockets = (sockets: ReadonlyArray<SockDiag.UnixSocket>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const socket of sockets) {
    if (socket.inode === 0 || socket.name === undefined || socket.state !== SockDiag.TCP_ESTABLISHED) continue
    counts.set(socket.name, (counts.get(socket.name) ?? 0) + 1)
  }
  return counts
}

/**
 * The established UNIX sockets by name, asked at most once every 50 ms: the kernel cannot filter UNIX sockets by
 * name, only by state, so one answer serves every service of a status request or a scrape. An accepted
 * connection carries its listener's name (the kernel gives it the listener's address at accept); the client end
 * has none unless it bound one.
 */
const unixCounts = memo(() =>
  Either.map(SockDiag.unixSockets(1 << SockDiag.TCP_ESTABLISHED), countUnixSockets)
)

/** The open accepted connections to these listeners, now. */
export const count = (endpoints: ReadonlyArray<Endpoint>): Effect.Effect<number> =>
  Effect.gen(function*() {
    const paths = new Set<string>()
    const tcp: Array<Exclude<Endpoint, { readonly family: "unix" }>> = []
    for (const endpoint of endpoints) {
      if (endpoint.family === "unix") {
        if (endpoint.path !== "") paths.add(endpoint.path)
      } else tcp.push(endpoint)
    }
    let total = 0
    if (paths.size > 0) {
      const counts = yield* SockDiag.fromKernel("unix", unixCounts)
      if (counts === undefined) total += countUnix(read("/proc/net/unix"), paths)
      else for (const path of paths) total += counts.get(path) ?? 0
    }
    if (tcp.length > 0) {
      const counted = yield* SockDiag.fromKernel("tcp", () => countTcpSockets(tcp, established.on))
      total += counted ?? countTcp(read("/proc/net/tcp"), tcp) + countTcp(read("/proc/net/tcp6"), tcp)
    }
    return total
  })

/** /proc/net/unix: is a UNIX socket listening (flag __SO_ACCEPTCON) at `path`? */
const listeningUnixIn = (table: string, path: string): boolean =>
  table.split("\n").some((line) => {
    const fields = line.trim().split(/\s+/)
    return fields.length >= 8 && fields[3] === "00010000" && fields.slice(7).join(" ") === path
  })

/** /proc/net/tcp{,6}: is a TCP socket listening (st 0A) on `port`, at `host` or a wildcard address? */
const listeningTcpIn = (table: string, host: string, port: number): boolean => {
  const wanted = normalizeIp(host)
  return table.split("\n").some((line) => {
    const fields = line.trim().split(/\s+/)
    if (fields.length < 4 || fields[3] !== "0A") return false
    const [hexIp, hexPort] = fields[1]!.split(":") as [string, string | undefined]
    if (hexPort === undefined || parseInt(hexPort, 16) !== port) return false
    const ip = decodeIp(hexIp)
    return ip === wanted || anyAddress(ip)
  })
}

/**
 * Is something listening at this address (Linux: a listening TCP socket on the port, at the host or a wildcard
 * address; or a listening UNIX socket with this name)? Lets soad see an app come up without connecting to it.
 * Asked anew at each look (it is polled while the app starts): the kernel answers with that port's listeners only.
 */
export const listening = (
  target: { readonly host: string; readonly port: number } | { readonly path: string }
): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    if ("path" in target) {
      const sockets = yield* SockDiag.fromKernel("unix", () => SockDiag.unixSockets(1 << SockDiag.TCP_LISTEN))
      if (sockets === undefined) return listeningUnixIn(readNow("/proc/net/unix"), target.path)
      return sockets.some((socket) => socket.name === target.path)
    }
    const sockets = yield* SockDiag.fromKernel("tcp", () => SockDiag.inetSocketsBoth(1 << SockDiag.TCP_LISTEN, [target.port, target.port]))
    if (sockets === undefined) {
      return listeningTcpIn(readNow("/proc/net/tcp"), target.host, target.port) ||
        listeningTcpIn(readNow("/proc/net/tcp6"), target.host, target.port)
    }
    const wanted = normalizeIp(target.host)
    return sockets.some((socket) => socket.port === target.port && (socket.ip === wanted || anyAddress(socket.ip)))
  })
