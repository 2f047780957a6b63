/**
 * Listener addresses: the forms a user writes (`/run/app.sock`, `http=127.0.0.1:8080`, `[::]:8080`, `@name`,
 * `fd:3`) and the typed value the rest of soad works with.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Path from "node:path"
import { isIPv4, isIPv6 } from "./config/ip.js"

/** A UNIX socket at a path in the file system. */
export interface UnixAddress {
  readonly _tag: "Unix"
  readonly path: string
}

/** A Linux abstract UNIX socket (`@name`): no file, gone with its last fd. */
export interface AbstractAddress {
  readonly _tag: "Abstract"
  readonly name: string
}

/** A TCP address; `host` is an IP literal, `"::"` means every interface, IPv6 and IPv4. */
export interface TcpAddress {
  readonly _tag: "Tcp"
  readonly host: string
  readonly port: number
}

/** A listening socket soad itself received through `LISTEN_FDS`, by number or by name. */
export interface InheritedAddress {
  readonly _tag: "Inherited"
  readonly fd: number | undefined
  readonly fdName: string | undefined
}

/** Where a listener listens. */
export type Address = UnixAddress | AbstractAddress | TcpAddress | InheritedAddress

/** A listener as configured: the name the app sees in `LISTEN_FDNAMES` and its address. */
export interface ListenerConfig {
  readonly name: string
  readonly address: Address
}

/** The name a listener gets when none is given, as the original soad. */
export const defaultName = "soad"

/** The longest path a UNIX socket may have here (sun_path, less its NUL). */
export const maxUnixPathBytes = process.platform === "linux" ? 107 : 103

const validName = /^[\x21-\x39\x3b-\x7e]{1,255}$/ // printable ASCII but ':' (systemd's FileDescriptorName)

const forms = "use /path, unix:PATH, @name, HOST:PORT, [IPV6]:PORT, :PORT or fd:N"

const parsePort = (text: string, input: string): Either.Either<number, string> => {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    return Either.left(`'${input}': the port must be a number from 0 to 65535`)
  }
  return Either.right(Number(text))
}

const unixPath = (path: string, input: string, cwd: string): Either.Either<Address, string> => {
  if (path.length === 0) return Either.left(`'${input}': the socket path is empty`)
  if (path.includes("\0")) return Either.left(`'${input}': the socket path contains a NUL byte`)
  const absolute = Path.resolve(cwd, path)
  const bytes = Buffer.byteLength(absolute)
  if (bytes > maxUnixPathBytes) {
    return Either.left(
      `'${absolute}' is ${bytes} bytes long; a UNIX socket path may have at most ${maxUnixPathBytes} here: use a shorter path`
    )
  }
  return Either.right({ _tag: "Unix", path: absolute })
}

/**
 * Parses an address (no `NAME=` prefix). Relative paths are resolved against `cwd`.
 */
export const parseAddress = (input: string, cwd: string = process.cwd()): Either.Either<Address, string> => {
  const text = input.trim()
  if (text.length === 0) return Either.left(`empty address: ${forms}`)
  if (text.startsWith("unix:")) return unixPath(text.slice(5), input, cwd)
  if (text.startsWith("/") || text.startsWith("./") || text.startsWith("../")) return unixPath(text, input, cwd)
  if (text.startsWith("@")) {
    const name = text.slice(1)
    if (process.platform !== "linux") return Either.left(`'${input}': abstract sockets exist only on Linux`)
    if (name.length === 0 || Buffer.byteLength(name) > maxUnixPathBytes) {
      return Either.left(`'${input}': an abstract socket name needs 1 to ${maxUnixPathBytes} bytes`)
    }
    return Either.right({ _tag: "Abstract", name })
  }
  if (text.startsWith("fd:")) {
    const ref = text.slice(3)
    if (/^\d+$/.test(ref)) {
      const fd = Number(ref)
      if (fd < 3) return Either.left(`'${input}': inherited sockets start at fd 3`)
      return Either.right({ _tag: "Inherited", fd, fdName: undefined })
    }
    if (!validName.test(ref)) return Either.left(`'${input}': expected fd:NUMBER or fd:NAME`)
    return Either.right({ _tag: "Inherited", fd: undefined, fdName: ref })
  }
  if (/^\d+$/.test(text)) {
    return Either.map(parsePort(text, input), (port): Address => ({ _tag: "Tcp", host: "::", port }))
  }
  const v6 = /^\[([^\]]*)\]:(.*)$/.exec(text)
  if (v6 !== null) {
    const host = v6[1]!
    if (isIPv6(host) === false) return Either.left(`'${input}': '${host}' is not an IPv6 address`)
    return Either.map(parsePort(v6[2]!, input), (port): Address => ({ _tag: "Tcp", host, port }))
  }
  const colon = text.lastIndexOf(":")
  if (colon >= 0 && !text.slice(0, colon).includes(":")) {
    const hostText = text.slice(0, colon)
    const host = hostText === "" || hostText === "*" ? "::" : hostText === "localhost" ? "127.0.0.1" : hostText
    if (host !== "::" && !isIPv4(host)) {
      return Either.left(`'${input}': '${hostText}' is not an IP address (write an IP, or [IPV6]:PORT)`)
    }
    return Either.map(parsePort(text.slice(colon + 1), input), (port): Address => ({ _tag: "Tcp", host, port }))
  }
  return Either.left(`'${input}' is not an address: ${forms}`)
}

/**
 * Parses `[NAME=]ADDR` as given to `-l`.
 */
export const parseListener = (input: string, cwd: string = process.cwd()): Either.Either<ListenerConfig, string> => {
  const eq = input.indexOf("=")
  if (eq > 0) {
    const name = input.slice(0, eq)
    if (!/[/@[\]]/.test(name)) {
      if (!validName.test(name)) {
        return Either.left(`'${input}': a listener name is printable ASCII without ':' or spaces, 1 to 255 characters`)
      }
      return Either.map(parseAddress(input.slice(eq + 1), cwd), (address) => ({ name, address }))
    }
  }
  // An inherited socket passed on by name keeps that name.
  return Either.map(parseAddress(input, cwd), (address) => ({
    name: address._tag === "Inherited" && address.fdName !== undefined ? address.fdName : defaultName,
    address
  }))
}

/** The address as a user would write it, for logs and errors. */
export const format = (address: Address): string => {
  switch (address._tag) {
    case "Unix":
      return address.path
    case "Abstract":
      return `@${address.name}`
    case "Tcp":
      return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
    case "Inherited":
      return address.fd !== undefined ? `fd:${address.fd}` : `fd:${address.fdName}`
  }
}

/**
 * Two listeners that cannot both be bound: the same address, or two on one TCP port where one is a wildcard that
 * covers the other (`[::]` listens on IPv6 and IPv4 alike, `0.0.0.0` on every IPv4 address). Port 0 (any free
 * port) overlaps nothing.
 */
export const overlaps = (a: Address, b: Address): boolean => {
  switch (a._tag) {
    case "Unix":
      return b._tag === "Unix" && a.path === b.path
    case "Abstract":
      return b._tag === "Abstract" && a.name === b.name
    case "Inherited":
      return b._tag === "Inherited" && (a.fd !== undefined ? a.fd === b.fd : a.fdName === b.fdName)
    case "Tcp": {
      if (b._tag !== "Tcp" || a.port !== b.port || a.port === 0) return false
      if (a.host === b.host || a.host === "::" || b.host === "::") return true
      return (a.host === "0.0.0.0" || b.host === "0.0.0.0") && isIPv4(a.host) && isIPv4(b.host)
    }
  }
}

/**
 * Addresses that may overlap share this key (a path, a name, an fd, a TCP port), so a set of listeners is checked
 * by key, not each against all (1,000 services: 500,000 comparisons). undefined: overlaps nothing (port 0).
 */
export const overlapKey = (address: Address): string | undefined => {
  switch (address._tag) {
    case "Unix":
      return `unix:${address.path}`
    case "Abstract":
      return `abstract:${address.name}`
    case "Inherited":
      return address.fd !== undefined ? `fd:${address.fd}` : `fdname:${address.fdName}`
    case "Tcp":
      return address.port === 0 ? undefined : `tcp:${address.port}`
  }
}

/** Where a proxied app listens: an address of its own, or `auto`. */
export type UpstreamAddress =
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }
  | UnixAddress
  | { readonly _tag: "Auto" }

/** Parses `--upstream`: `HOST:PORT`, a UNIX socket path, or `auto`. */
export const parseUpstream = (input: string, cwd: string = process.cwd()): Either.Either<UpstreamAddress, string> => {
  if (input.trim() === "auto") return Either.right({ _tag: "Auto" })
  return Either.flatMap(parseAddress(input, cwd), (address): Either.Either<UpstreamAddress, string> => {
    if (address._tag === "Unix") return Either.right(address)
    if (address._tag === "Tcp") {
      if (address.port === 0) return Either.left(`'${input}': the upstream needs a port (or use auto)`)
      return Either.right({ _tag: "Tcp", host: address.host === "::" ? "127.0.0.1" : address.host, port: address.port })
    }
    return Either.left(`'${input}': an upstream is HOST:PORT, a UNIX socket path, or auto`)
  })
}
