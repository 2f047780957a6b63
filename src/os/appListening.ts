/**
 * What an app listens on by itself (Linux): the listening sockets its process group holds, other than the ones
 * soad handed it. An app that binds its own port instead of taking fd 3 never accepts soad's connection; this
 * lets soad say so, and how to run it instead (proxy mode). Read only when a start has failed.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fs from "node:fs"
import { decodeIp, type Endpoint } from "./connections.js"
import * as SockDiag from "./sockDiag.js"

/** A listening socket found in /proc/net: its inode and address. */
export interface ListeningSocket {
  readonly inode: number
  readonly endpoint: Endpoint
}

/** /proc/net/tcp{,6}: the listening sockets (st 0A) with their inodes. */
export const listeningTcp = (table: string): Array<ListeningSocket> => {
  const found: Array<ListeningSocket> = []
  for (const line of table.split("\n")) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const fields = line.trim().split(/\s+/)
    if (fields.length < 10 || fields[3] !== "0A") continue
    const [hexIp, hexPort] = fields[1]!.split(":") as [string, string | undefined]
    const inode = Number(fields[9])
    if (hexPort === undefined || !(inode > 0)) continue
    const ip = decodeIp(hexIp)
    found.push({ inode, endpoint: { family: ip.includes(":") ? "ipv6" : "ipv4", ip, port: parseInt(hexPort, 16) } })
  }
  return found
}

/** /proc/net/unix: the listening sockets (flag __SO_ACCEPTCON, St 01) that have a path, with their inodes. */
export const listeningUnix = (table: string): Array<ListeningSocket> => {
  const found: Array<ListeningSocket> = []
  for (const line of table.split("\n")) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/)
    const inode = Number(fields[6])
    if (fields.length < 8 || fields[3] !== "00010000" || fields[5] !== "01" || !(inode > 0)) continue
    found.push({ inode, endpoint: { family: "unix", path: fields.slice(7).join(" ") } })
  }
  return found
}

/** From sock_diag: the TCP listeners with their inodes. */
export const listeningFromInet = (sockets: ReadonlyArray<SockDiag.InetSocket>): Array<ListeningSocket> =>
  sockets.filter((socket) => socket.state === SockDiag.TCP_LISTEN && socket.inode > 0).map((socket) => ({
    inode: socket.inode,
    endpoint: { family: socket.ip.includes(":") ? "ipv6" : "ipv4", ip: socket.ip, port: socket.port }
  }))

/** From sock_diag: the UNIX listeners that have a name, with their inodes. */
export const listeningFromUnix = (sockets: ReadonlyArray<SockDiag.UnixSocket>): Array<ListeningSocket> =>
  sockets.flatMap((socket) =>
    socket.state === SockDiag.TCP_LISTEN && socket.inode > 0 && socket.name !== undefined && socket.name !== ""
      ? [{ inode: socket.inode, endpoint: { family: "unix", path: socket.name } }]
      : []
  )

/** The inode of a /proc/PID/fd link to a socket ("socket:[12345]"); undefined for anything else. */
export const socketInode = (link: string): number | undefined => {
  const match = /^socket:\[(\d+)\]$/.exec(link)
  return match === null ? undefined : Number(match[1])
}

/** The process group in a /proc/PID/stat line (the 3rd field after the command in parentheses). */
export const processGroup = (stat: string): number => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2])

/** An address as a user writes it: "127.0.0.1:8000", "[::1]:8000", a path or "@abstract". */
export const formatEndpoint = (endpoint: Endpoint): string =>
  endpoint.family === "unix"
    ? endpoint.path
    : endpoint.family === "ipv6"
    ? `${new URL(`http://[${endpoint.ip}]/`).hostname}:${endpoint.port}` // the URL parser writes "[::1]"
    : `${endpoint.ip}:${endpoint.port}`

/** Where soad would reach an app listening there: the wildcard addresses become the loopback. */
export const upstreamFor = (endpoint: Endpoint): string =>
  endpoint.family === "unix"
    ? endpoint.path
    : endpoint.ip === "0.0.0.0"
    ? `127.0.0.1:${endpoint.port}`
    : endpoint.ip === "0:0:0:0:0:0:0:0"
    ? `[::1]:${endpoint.port}`
    : formatEndpoint(endpoint)

/** The hint for an app that listens on `own` (not empty) itself instead of taking the `fdCount` sockets it was given. */
export const hint = (own: ReadonlyArray<Endpoint>, fdCount: number): {
  readonly message: string
  readonly listensOn: string
  readonly upstream: string
} => {
  const fds = fdCount <= 1 ? "fd 3" : `fds 3-${2 + fdCount}`
  const listensOn = own.map(formatEndpoint).join(", ")
  const upstream = upstreamFor(own.find((endpoint) => endpoint.family !== "unix") ?? own[0]!)
  return {
    message: `the app listens on ${listensOn} itself instead of taking ${fds}: ` +
      `if it cannot take a socket, run it in proxy mode with --upstream ${upstream}`,
    listensOn,
    upstream
  }
}

const readdir = (path: string): Array<string> => {
  try {
    return Fs.readdirSync(path)
  } catch {
    return []
  }
}

const readText = (path: string): string => {
  try {
    return Fs.readFileSync(path, "utf8")
  } catch {
    return ""
  }
}

/** The inodes of the sockets that the processes of group `pgid` hold open. */
const groupSocketInodes = (pgid: number): Set<number> => {
  const inodes = new Set<number>()
  for (const pid of readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    const stat = readText(`/proc/${pid}/stat`)
    if (stat === "" || processGroup(stat) !== pgid) continue
    for (const fd of readdir(`/proc/${pid}/fd`)) {
      let link: string
      try {
        link = Fs.readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        continue // closed meanwhile
      }
      const inode = socketInode(link)
      if (inode !== undefined) inodes.add(inode)
    }
  }
  return inodes
}

/** Every listening TCP and UNIX socket of the host (there are few), from the kernel or else from /proc/net. */
const allListening = Effect.gen(function*() {
  const listen = 1 << SockDiag.TCP_LISTEN
  const tcp = yield* SockDiag.fromKernel("tcp", () => Either.map(SockDiag.inetSocketsBoth(listen), listeningFromInet))
  const unix = yield* SockDiag.fromKernel("unix", () => Either.map(SockDiag.unixSockets(listen), listeningFromUnix))
  return [
    ...tcp ?? [...listeningTcp(readText("/proc/net/tcp")), ...listeningTcp(readText("/proc/net/tcp6"))],
    ...unix ?? listeningUnix(readText("/proc/net/unix"))
  ]
})

/**
 * The addresses that process group `pgid` listens on, apart from the sockets whose inodes are in `given`
 * (soad's listeners). Empty where it cannot be seen (not Linux).
 */
export const ownListening = (pgid: number, given: ReadonlySet<number>): Effect.Effect<Array<Endpoint>> =>
  Effect.gen(function*() {
    if (process.platform !== "linux") return []
    const held = groupSocketInodes(pgid)
    if (held.size === 0) return []
    const listening = yield* allListening
    return listening.filter((socket) => held.has(socket.inode) && !given.has(socket.inode)).map((socket) => socket.endpoint)
  })
