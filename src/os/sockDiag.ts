/**
 * The kernel's socket lists (Linux NETLINK_SOCK_DIAG), decoded: the native part (src/native/diag.c) sends the
 * request and returns the reply's bytes as the kernel sent them; this module reads them. The kernel filters by
 * state and, for TCP, by local port, so what is read is only what soad asked for, however many sockets the host
 * has (/proc/net lists them all).
 *
 * The decoders read bytes from outside JavaScript: each walks the reply once, checks every length field against
 * what is left before it reads, and says what is wrong instead of reading past the end. The layouts are the
 * kernel's ABI (include/uapi/linux/netlink.h, inet_diag.h, unix_diag.h), in the host's byte order except where
 * the kernel says network order (ports, addresses).
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { event } from "../Logging.js"
import { native } from "./native.js"

/** TCP states (include/net/tcp_states.h): what sock_diag reports, and the bits of its state mask. */
export const TCP_ESTABLISHED = 1
/** A listening socket (UNIX listeners report it too). */
export const TCP_LISTEN = 10

/** unix_diag_req.udiag_show: add the socket's name (UNIX_DIAG_NAME). */
export const UDIAG_SHOW_NAME = 0x1

const NLMSG_ERROR = 2
const NLMSG_DONE = 3
const SOCK_DIAG_BY_FAMILY = 20
const AF_INET = 2
const AF_INET6 = 10
const UNIX_DIAG_NAME = 0
/** nla_type's top two bits are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER). */
const NLA_TYPE_MASK = 0x3fff

/** struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32. */
const headerSize = 16
/** struct inet_diag_msg: family, state, timer, retrans (u8), the socket id (48 bytes), then five u32 (inode last). */
const inetMessageSize = 72
/** struct unix_diag_msg: family, type, state, pad (u8), ino u32, cookie u32[2]. */
const unixMessageSize = 16

/** A TCP socket from inet_diag. `inode` 0: no process holds it (a connection still in the accept queue). */
export interface InetSocket {
  readonly family: "ipv4" | "ipv6"
  readonly state: number
  /** The local address, as connections.ts writes it (IPv4-mapped IPv6 as IPv4, IPv6 as 8 groups). */
  readonly ip: string
  readonly port: number
  readonly inode: number
}

/** A UNIX socket from unix_diag: its state, inode and name ("/path", "@abstract"; undefined: none). */
export interface UnixSocket {
  readonly state: number
  readonly inode: number
  readonly name: string | undefined
}

/** A reply that cannot be read (cut short, a length past its end), or the kernel's error. */
export class SockDiagError extends Data.TaggedError("SockDiagError")<{
  readonly message: string
  /** The kernel's errno, for an NLMSG_ERROR in the reply. */
  readonly errno?: number
}> {}

const align4 = (n: number) => (n + 3) & ~3

/**
 * Walks a reply's messages up to NLMSG_DONE, calling `payload` with each SOCK_DIAG_BY_FAMILY message's payload
 * bounds (the header's own length, checked to lie inside the reply). A reply must end with NLMSG_DONE.
 */
const walk = (
  reply: Uint8Array,
  payload: (view: DataView, start: number, end: number) => string | undefined
): SockDiagError | undefined => {
  const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength)
  let offset = 0
  while (offset + headerSize <= reply.byteLength) {
    const length = view.getUint32(offset, true)
    const type = view.getUint16(offset + 4, true)
    if (length < headerSize || length > reply.byteLength - offset) {
      return new SockDiagError({ message: `a message at byte ${offset} says it is ${length} bytes long, ${reply.byteLength - offset} are left` })
    }
    if (type === NLMSG_DONE) return undefined
    if (type === NLMSG_ERROR) {
      const errno = length >= headerSize + 4 ? -view.getInt32(offset + headerSize, true) : undefined
      return new SockDiagError({ message: `the kernel answered with error ${errno ?? "(cut short)"}`, ...(errno === undefined ? {} : { errno }) })
    }
    if (type === SOCK_DIAG_BY_FAMILY) {
      const wrong = payload(view, offset + headerSize, offset + length)
      if (wrong !== undefined) return new SockDiagError({ message: `the message at byte ${offset}: ${wrong}` })
    }
    offset += align4(length)
  }
  return new SockDiagError({ message: `the reply ends at byte ${reply.byteLength} without NLMSG_DONE` })
}

const hex = (n: number) => n.toString(16)

/** An address from inet_diag's id (network order): IPv4, IPv4-mapped IPv6 as IPv4, IPv6 as 8 groups. */
const ipAt = (view: DataView, at: number, family: number): string => {
  const byte = (i: number) => view.getUint8(at + i)
  const v4 = (from: number) => `${byte(from)}.${byte(from + 1)}.${byte(from + 2)}.${byte(from + 3)}`
  if (family === AF_INET) return v4(0)
  let mapped = view.getUint16(at + 10) === 0xffff
  for (let i = 0; mapped && i < 10; i++) mapped = byte(i) === 0
  if (mapped) return v4(12)
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(hex(view.getUint16(at + i)))
  return groups.join(":")
}

/** Decodes an inet_diag reply (diagInet): the TCP sockets it lists. */
export const decodeInet = (reply: Uint8Array): Either.Either<Array<InetSocket>, SockDiagError> => {
  const found: Array<InetSocket> = []
  const wrong = walk(reply, (view, start, end) => {
    if (end - start < inetMessageSize) return `${end - start} bytes, an inet_diag_msg takes ${inetMessageSize}`
    const family = view.getUint8(start)
    if (family !== AF_INET && family !== AF_INET6) return `family ${family} is not IPv4 or IPv6`
    found.push({
      family: family === AF_INET ? "ipv4" : "ipv6",
      state: view.getUint8(start + 1),
      ip: ipAt(view, start + 8, family),
      port: view.getUint16(start + 4), // idiag_sport, network order
      inode: view.getUint32(start + 68, true)
    })
    return undefined
  })
  return wrong === undefined ? Either.right(found) : Either.left(wrong)
}

const utf8 = new TextDecoder()

/**
 * A UNIX_DIAG_NAME as /proc/net/unix and soad's listeners write it: a path up to its NUL (the kernel keeps the one
 * bind added), an abstract name (a leading NUL) as "@name" up to its next NUL, as getsockname's text is cut there.
 */
const nameAt = (reply: Uint8Array, start: number, end: number): string => {
  const abstract = end > start && reply[start] === 0
  const from = abstract ? start + 1 : start
  let stop = from
  while (stop < end && reply[stop] !== 0) stop++
  const text = utf8.decode(reply.subarray(from, stop))
  return abstract ? `@${text}` : text
}

/** Decodes a unix_diag reply (diagUnix): the UNIX sockets it lists, with their names where asked for. */
export const decodeUnix = (reply: Uint8Array): Either.Either<Array<UnixSocket>, SockDiagError> => {
  const found: Array<UnixSocket> = []
  const wrong = walk(reply, (view, start, end) => {
    if (end - start < unixMessageSize) return `${end - start} bytes, a unix_diag_msg takes ${unixMessageSize}`
    let name: string | undefined
    for (let at = start + unixMessageSize; at + 4 <= end;) {
      const length = view.getUint16(at, true)
      if (length < 4 || length > end - at) return `an attribute at byte ${at} says it is ${length} bytes long, ${end - at} are left`
      if ((view.getUint16(at + 2, true) & NLA_TYPE_MASK) === UNIX_DIAG_NAME) name = nameAt(reply, at + 4, at + length)
      at += align4(length)
    }
    found.push({ state: view.getUint8(start + 2), inode: view.getUint32(start + 4, true), name })
    return undefined
  })
  return wrong === undefined ? Either.right(found) : Either.left(wrong)
}

/** The native query failed (no sock_diag in this kernel, a netlink error): the Error it threw. */
const asError = (cause: unknown): SockDiagError =>
  new SockDiagError({
    message: cause instanceof Error ? cause.message : String(cause),
    ...(typeof (cause as { errno?: unknown }).errno === "number" ? { errno: (cause as { errno: number }).errno } : {})
  })

/** The most port ranges one request filters by (src/native/diag.c: each is 20 bytes of the kernel's program). */
export const maxRanges = 1024

/**
 * Ports as ranges for the kernel's filter, flat ([lo, hi, lo, hi, …]): adjacent ports join into one range, and
 * beyond `max` ranges the closest ones are joined across their gaps (the filter then keeps a few sockets more,
 * which the caller passes over: it compares each socket's port anyway).
 */
export const portRanges = (ports: Iterable<number>, max = maxRanges): Array<number> => {
  const sorted = [...new Set(ports)].sort((a, b) => a - b)
  const ranges: Array<[number, number]> = []
  for (const port of sorted) {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && port === last[1] + 1) last[1] = port
    else ranges.push([port, port])
  }
  if (ranges.length > max) {
    // Close the smallest gaps: after range i comes a gap of ranges[i + 1][0] - ranges[i][1].
    const gaps = ranges.slice(0, -1).map((range, i) => ({ i, size: ranges[i + 1]![0] - range[1] }))
    gaps.sort((a, b) => a.size - b.size || a.i - b.i)
    const closed = new Set(gaps.slice(0, ranges.length - max).map((gap) => gap.i))
    const joined: Array<[number, number]> = []
    for (let i = 0; i < ranges.length; i++) {
      if (i > 0 && closed.has(i - 1)) joined[joined.length - 1]![1] = ranges[i]![1]
      else joined.push([ranges[i]![0], ranges[i]![1]])
    }
    return joined.flat()
  }
  return ranges.flat()
}

/**
 * The TCP sockets of one family (4: IPv4, 6: IPv6, which includes a dual-stack listener's IPv4 clients) in
 * `states` (a mask of 1 << TCP_*), on the local ports in `ranges` (from portRanges) if given. Each question walks
 * the kernel's whole table of established connections (its size is set by the host's memory, not by how many
 * sockets there are): ask for one family where one will do.
 */
export const inetSockets = (
  family: 4 | 6,
  states: number,
  ranges?: ReadonlyArray<number>
): Either.Either<Array<InetSocket>, SockDiagError> => {
  let reply: Buffer
  try {
    reply = native().diagInet(family, states, ranges === undefined || ranges.length === 0 ? null : ranges)
  } catch (cause) {
    return Either.left(asError(cause))
  }
  return decodeInet(reply)
}

/** The same over both families. */
export const inetSocketsBoth = (states: number, ranges?: ReadonlyArray<number>): Either.Either<Array<InetSocket>, SockDiagError> =>
  Either.flatMap(inetSockets(4, states, ranges), (v4) => Either.map(inetSockets(6, states, ranges), (v6) => [...v4, ...v6]))

/** The UNIX sockets in `states`, with their names. */
export const unixSockets = (states: number): Either.Either<Array<UnixSocket>, SockDiagError> => {
  let reply: Buffer
  try {
    reply = native().diagUnix(states, UDIAG_SHOW_NAME)
  } catch (cause) {
    return Either.left(asError(cause))
  }
  return decodeUnix(reply)
}

/** The two kinds of socket soad asks about; each falls back to /proc on its own. */
export type Kind = "tcp" | "unix"

/**
 * Asks the kernel with `ask`, unless sock_diag has failed before for this kind of socket or is switched off: its
 * answer, or undefined for the caller to read /proc/net instead. The first failure is said once, at debug; soad
 * does not ask again (a kernel without inet_diag or unix_diag loads the module anew at each request, and the
 * answer does not change).
 */
export const makeAsker = (switchedOff: () => boolean) => {
  let failed: Record<Kind, boolean> | undefined
  return <A>(kind: Kind, ask: () => Either.Either<A, SockDiagError>): Effect.Effect<A | undefined> =>
    Effect.suspend(() => {
      failed ??= { tcp: switchedOff(), unix: switchedOff() }
      if (failed[kind]) return Effect.succeed(undefined)
      const answer = ask()
      if (Either.isRight(answer)) return Effect.succeed(answer.right)
      failed[kind] = true
      return Effect.as(
        event(
          "debug",
          "sock_diag_fallback",
          `cannot ask the kernel for ${kind === "tcp" ? "TCP" : "UNIX"} sockets (${answer.left.message}): reading /proc/net instead`,
          { sockets: kind, error: answer.left.message, errno: answer.left.errno }
        ),
        undefined
      )
    })
}

/**
 * soad's asker. SOAD_SOCK_DIAG=0 makes soad read /proc/net as before sock_diag was used (the benchmark measures
 * both in one run). Read at the first question, not when this module is evaluated (the startup snapshot evaluates it
 * at build time).
 */
export const fromKernel = makeAsker(() => process.env.SOAD_SOCK_DIAG === "0")
