/**
 * The byte relay of proxy mode, behind RelayService's live layer (src/RelayService.ts). On Linux the native
 * binding accepts, connects and splices both ways, so bytes never pass through JavaScript; elsewhere Node sockets
 * are piped. Both keep half-closes, apply backpressure and end both sides when either fails, and report open
 * connections, bytes each way and the last activity.
 *
 * @internal
 */
import * as Monotonic from "../core/monotonic.js"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import { native } from "./native.js"
import { errnoName, type NativeError } from "./nativeErrors.js"
import { net } from "./lazyNet.js"

/** Where the app listens. */
export type Target = { readonly host: string; readonly port: number } | { readonly path: string }

/** An accepted connection, held or relayed. */
export type Conn = number | Net.Socket

/** What a relayer reports. */
export interface RelayStats {
  readonly open: number
  readonly bytesIn: number
  readonly bytesOut: number
  /** Clock millis of the latest connection or byte; undefined if none yet. */
  readonly lastActivity: number | undefined
}

/**
 * soad ran out of fds (or memory for sockets) on the service's listeners and stopped accepting for a while, or
 * has them back and accepts again. `limit`: RLIMIT_NOFILE, undefined if unlimited.
 */
export type Pressure =
  | { readonly _tag: "Exhausted"; readonly code: string; readonly syscall: string; readonly limit: number | undefined }
  | { readonly _tag: "Recovered"; readonly limit: number | undefined }

/** Why a connection could not be relayed (it has been closed): the failing syscall and its errno name. */
export interface Failure {
  readonly syscall: string
  readonly code: string
}

/** Accepts on a service's listeners and relays its connections. */
export interface Relayer {
  /**
   * Starts accepting on these listener fds; `onArrive` gets each new connection (to relay or to hold), `onPressure`
   * the start and the end of each episode of fd exhaustion.
   */
  readonly listen: (
    fds: ReadonlyArray<number>,
    onArrive: (conn: Conn) => void,
    onPressure: (pressure: Pressure) => void
  ) => Effect.Effect<void, never, Scope.Scope>
  /** Relays the connection to the app; if that cannot be set up or the app refuses, closes it and calls `onFail`. */
  readonly connect: (conn: Conn, target: Target, onFail: (failure: Failure) => void) => void
  /** full: stop accepting, new connections wait in the kernel's backlog; false: accept again. */
  readonly hold: (full: boolean) => void
  /** Closes a connection. */
  readonly close: (conn: Conn) => void
  /** Closes every connection being relayed (held ones are the caller's). */
  readonly closeRelayed: () => void
  /**
   * The bytes the client of a held connection sent so far, left for the app (empty: none yet); undefined if the
   * client is gone or this relayer cannot look (the Node relayer).
   */
  readonly peek: (conn: Conn) => Uint8Array | undefined
  /**
   * soad answers a held connection itself (it is no longer held): what the client sent is dropped, `response`
   * written, and the connection closed once the client closes; `close` ends it sooner.
   */
  readonly answer: (conn: Conn, response: Uint8Array) => void
  /** Is this held connection gone (the client went away)? Only known for the Node relayer. */
  readonly gone: (conn: Conn) => boolean
  readonly stats: Effect.Effect<RelayStats>
}

/** RLIMIT_NOFILE (soft), undefined if unlimited. */
export const fdLimit = (): number | undefined => {
  const limit = native().relayFdLimit()
  return limit < 0 ? undefined : limit
}

/**
 * The default --max-held: limit/8, between 1 and 1024. A held connection costs one fd, and six once relayed
 * (both sockets, two pipes): limit/8 held connections relayed at once take 3/4 of the fds, leaving the rest to soad
 * itself, its listeners and the connections already relayed.
 */
export const defaultMaxHeld = (limit: number | undefined): number =>
  limit === undefined ? 1024 : Math.max(1, Math.min(1024, Math.floor(limit / 8)))

const failureOf = (error: unknown): Failure => {
  const e = error as NativeError
  return {
    syscall: e.syscall ?? "relayConnect",
    code: typeof e.errno === "number" ? errnoName(e) : "EIO"
  }
}

let nextGroup = 1
const closeHandlers = new Map<number, (id: number) => void>()
let closeHookInstalled = false

/** The native relayer (Linux: accept4 + splice on Node's loop). */
const nativeRelayer = (clock: Clock.Clock): Relayer => {
  const n = native()
  if (!closeHookInstalled) {
    n.relayOnClose((id) => {
      const handler = closeHandlers.get(id)
      closeHandlers.delete(id)
      handler?.(id)
    })
    closeHookInstalled = true
  }
  const group = nextGroup++
  const known = new Set<number>()
  const relayed = new Set<number>()
  const forget = (id: number) => {
    known.delete(id)
    relayed.delete(id)
  }
  return {
    listen: (fds, onArrive, onPressure) => {
      // One report per episode for the whole group: exhausted when the first listener pauses, recovered when the last resumes.
      const paused = new Set<number>()
      const pressure = (fd: number) => (what: "exhausted" | "recovered", code: string | null, syscall: string | null, limit: number) => {
        const before = paused.size
        if (what === "exhausted") paused.add(fd)
        else paused.delete(fd)
        const known = limit < 0 ? undefined : limit
        if (before === 0 && paused.size > 0) onPressure({ _tag: "Exhausted", code: code ?? "EMFILE", syscall: syscall ?? "accept4", limit: known })
        else if (before > 0 && paused.size === 0) onPressure({ _tag: "Recovered", limit: known })
      }
      return Effect.forEach(fds, (fd) =>
        Effect.acquireRelease(
          Effect.sync(() =>
            n.relayListen(fd, group, (id) => {
              known.add(id)
              closeHandlers.set(id, forget)
              onArrive(id)
            }, pressure(fd))
          ),
          (watch) => Effect.sync(() => n.relayUnlisten(watch))
        ), { discard: true }).pipe(
          Effect.zipRight(Effect.addFinalizer(() => Effect.sync(() => [...known].forEach((id) => n.relayClose(id)))))
        )
    },
    connect: (conn, target, onFail) => {
      const id = conn as number
      relayed.add(id)
      // ECONNABORTED: soad closed it itself while it connected (the app stops), not a failure to report.
      const done = (error: string | null) => {
        if (error !== null && error !== "ECONNABORTED") onFail({ syscall: "connect", code: error })
      }
      try {
        if ("path" in target) n.relayConnect(id, target.path, -1, done)
        else n.relayConnect(id, target.host, target.port, done)
      } catch (error) {
        n.relayClose(id)
        onFail(failureOf(error))
      }
    },
    hold: (full) => n.relayHold(group, full),
    peek: (conn) => n.relayPeek(conn as number) ?? undefined,
    answer: (conn, response) => {
      try {
        n.relayAnswer(conn as number, Buffer.from(response.buffer, response.byteOffset, response.byteLength))
      } catch {
        n.relayClose(conn as number) // no longer held, or no memory: the client sees a closed connection
      }
    },
    close: (conn) => n.relayClose(conn as number),
    closeRelayed: () => [...relayed].forEach((id) => n.relayClose(id)),
    gone: () => false,
    stats: Effect.sync(() => {
      const stats = n.relayStats(group)
      return {
        open: stats.open,
        bytesIn: stats.bytesIn,
        bytesOut: stats.bytesOut,
        lastActivity: stats.ago < 0 ? undefined : Math.floor(Monotonic.unsafeNow(clock) - stats.ago)
      }
    })
  }
}

/** The Node relayer: sockets piped both ways. */
const nodeRelayer = (clock: Clock.Clock): Relayer => {
  const open = new Set<{ readonly client: Net.Socket; readonly upstream: Net.Socket }>()
  const gone = new WeakSet<Net.Socket>()
  let bytesIn = 0
  let bytesOut = 0
  let lastActivity: number | undefined
  const touch = () => (lastActivity = Monotonic.unsafeNow(clock))
  return {
    // Node's libuv already keeps a spare fd to get out of EMFILE: no pressure is reported here.
    listen: (fds, onArrive, _onPressure) =>
      Effect.forEach(fds, (listenerFd) => {
        const server = net().createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
          touch()
          client.on("error", () => client.destroy())
          client.once("close", () => gone.add(client))
          onArrive(client)
        })
        const fd = native().dup(listenerFd) // Node owns and closes the copy
        return Effect.acquireRelease(
          Effect.async<void>((resume) => {
            server.listen({ fd }, () => resume(Effect.void))
          }),
          () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
        )
      }, { discard: true }),
    connect: (conn, target, onFail) => {
      const client = conn as Net.Socket
      const upstream = net().connect({ ...target, allowHalfOpen: true })
      let connected = false
      upstream.once("connect", () => (connected = true))
      upstream.once("error", (error: NodeJS.ErrnoException) => {
        if (!connected) onFail({ syscall: error.syscall ?? "connect", code: error.code ?? "EIO" })
      })
      const pair = { client, upstream }
      open.add(pair)
      const end = () => {
        open.delete(pair)
        client.destroy()
        upstream.destroy()
      }
      client.on("error", end)
      upstream.on("error", end)
      client.on("close", end)
      upstream.on("close", end)
      client.on("data", (chunk: Buffer) => {
        touch()
        bytesIn += chunk.length
      })
      upstream.on("data", (chunk: Buffer) => {
        touch()
        bytesOut += chunk.length
      })
      client.pipe(upstream)
      upstream.pipe(client)
    },
    // A paused socket cannot be read without taking the bytes from the app: no waiting page here.
    peek: () => undefined,
    answer: (conn, response) => void (conn as Net.Socket).end(response),
    close: (conn) => (conn as Net.Socket).destroy(),
    closeRelayed: () => {
      for (const pair of open) {
        pair.client.destroy()
        pair.upstream.destroy()
      }
    },
    // Not bounded here: a net.Server cannot stop accepting and keep its listener.
    hold: () => {},
    gone: (conn) => gone.has(conn as Net.Socket),
    stats: Effect.sync(() => ({ open: open.size, bytesIn, bytesOut, lastActivity }))
  }
}

/** The best relayer here (the live one: it loads the native binding). */
export const make = (clock: Clock.Clock): Relayer =>
  native().relaySupported() ? nativeRelayer(clock) : nodeRelayer(clock)
