/**
 * Open connections to soad's listeners, read from /proc/net (Linux): the accepted, still open server-side
 * sockets that belong to a listener. Read only when an idle deadline comes, never polled while the app is busy.
 *
 * @internal
 */
import * as Fs from "node:fs"
import { readFresh } from "./procfs.js"
import * as Net from "node:net"

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

/** The open accepted connections to these listeners, now. */
export const count = (endpoints: ReadonlyArray<Endpoint>): number => {
  const paths = new Set<string>()
  const tcp: Array<{ ip: string; port: number }> = []
  for (const endpoint of endpoints) {
    if (endpoint.family === "unix") {
      if (endpoint.path !== "") paths.add(endpoint.path)
    } else tcp.push(endpoint)
  }
  let total = 0
  if (paths.size > 0) total += countUnix(read("/proc/net/unix"), paths)
  if (tcp.length > 0) total += countTcp(read("/proc/net/tcp"), tcp) + countTcp(read("/proc/net/tcp6"), tcp)
  return total
}

/**
 * Is something listening at this address (Linux: a LISTEN entry in /proc/net/tcp{,6}, or a listening UNIX socket
 * in /proc/net/unix)? Lets soad see an app come up without connecting to it.
 */
export const listening = (target: { readonly host: string; readonly port: number } | { readonly path: string }): boolean => {
  if ("path" in target) {
    return readNow("/proc/net/unix").split("\n").some((line) => {
      const fields = line.trim().split(/\s+/)
      return fields.length >= 8 && fields[3] === "00010000" && fields.slice(7).join(" ") === target.path
    })
  }
  const wanted = normalizeIp(target.host)
  const matches = (table: string) =>
    table.split("\n").some((line) => {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 4 || fields[3] !== "0A") return false
      const [hexIp, hexPort] = fields[1]!.split(":") as [string, string | undefined]
      if (hexPort === undefined || parseInt(hexPort, 16) !== target.port) return false
      const ip = decodeIp(hexIp)
      return ip === wanted || anyAddress(ip)
    })
  return matches(readNow("/proc/net/tcp")) || matches(readNow("/proc/net/tcp6"))
}
