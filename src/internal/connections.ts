/**
 * Open connections to soad's listeners (Linux): the accepted, still open server-side sockets that belong to a
 * listener, and whether an app listens on an address yet. Asked of the kernel (sock_diag, internal/sockDiag.ts),
 * which filters by state and port, so a look costs the same however many sockets the host has; read from
 * /proc/net, which lists every socket of the host, where the kernel cannot answer. Looked at when an idle deadline
 * comes (never while the app is busy), and while an app starts.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { memo, readFresh } from "./procfs.js"
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
  if (!Net.isIPv6(ip)) return ip
  const [head, tail] = ip.includes("::") ? ip.split("::") as [string, string] : [ip, undefined]
  const left = head === "" ? [] : head.split(":")
  const right = tail === undefined || tail === "" ? [] : tail.split(":")
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0")
  return [...left, ...zeros, ...right].map((group) => parseInt(group, 16).toString(16)).join(":")
}

/** The wildcard address of either family: a listener there takes every address of its port. */
export const anyAddress = (ip: string) => ip === "0.0.0.0" || normalizeIp(ip) === "0:0:0:0:0:0:0:0"

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

/**
 * From sock_diag: the accepted connections (established, with an inode) on these listeners' ports and addresses.
 * One question per port, filtered by the kernel: only that port's established sockets come back.
 */
export const countTcpSockets = (
  byPort: ReadonlyMap<number, ReadonlyArray<{ readonly ip: string }>>,
  ask: (port: number) => Either.Either<ReadonlyArray<SockDiag.InetSocket>, SockDiag.SockDiagError>
): Either.Either<number, SockDiag.SockDiagError> => {
  let count = 0
  for (const [port, listeners] of byPort) {
    const sockets = ask(port)
    if (Either.isLeft(sockets)) return Either.left(sockets.left)
    for (const socket of sockets.right) {
      if (socket.inode !== 0 && socket.port === port && matchesAny(listeners, socket.ip)) count++
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

const tcpEstablished = (port: number) => SockDiag.inetSockets(1 << SockDiag.TCP_ESTABLISHED, port)

/** The open accepted connections to these listeners, now. */
export const count = (endpoints: ReadonlyArray<Endpoint>): Effect.Effect<number> =>
  Effect.gen(function*() {
    const paths = new Set<string>()
    const byPort = new Map<number, Array<{ ip: string; port: number }>>()
    for (const endpoint of endpoints) {
      if (endpoint.family === "unix") {
        if (endpoint.path !== "") paths.add(endpoint.path)
      } else byPort.set(endpoint.port, [...byPort.get(endpoint.port) ?? [], endpoint])
    }
    let total = 0
    if (paths.size > 0) {
      const counts = yield* SockDiag.fromKernel("unix", unixCounts)
      if (counts === undefined) total += countUnix(read("/proc/net/unix"), paths)
      else for (const path of paths) total += counts.get(path) ?? 0
    }
    if (byPort.size > 0) {
      const counted = yield* SockDiag.fromKernel("tcp", () => countTcpSockets(byPort, tcpEstablished))
      if (counted !== undefined) total += counted
      else {
        const tcp = [...byPort.values()].flat()
        total += countTcp(read("/proc/net/tcp"), tcp) + countTcp(read("/proc/net/tcp6"), tcp)
      }
    }
    return total
  })

/** /proc/net/unix: is a UNIX socket listening (flag __SO_ACCEPTCON) at `path`? */
export const listeningUnixIn = (table: string, path: string): boolean =>
  table.split("\n").some((line) => {
    const fields = line.trim().split(/\s+/)
    return fields.length >= 8 && fields[3] === "00010000" && fields.slice(7).join(" ") === path
  })

/** /proc/net/tcp{,6}: is a TCP socket listening (st 0A) on `port`, at `host` or a wildcard address? */
export const listeningTcpIn = (table: string, host: string, port: number): boolean => {
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
    const sockets = yield* SockDiag.fromKernel("tcp", () => SockDiag.inetSockets(1 << SockDiag.TCP_LISTEN, target.port))
    if (sockets === undefined) {
      return listeningTcpIn(readNow("/proc/net/tcp"), target.host, target.port) ||
        listeningTcpIn(readNow("/proc/net/tcp6"), target.host, target.port)
    }
    const wanted = normalizeIp(target.host)
    return sockets.some((socket) => socket.port === target.port && (socket.ip === wanted || anyAddress(socket.ip)))
  })
