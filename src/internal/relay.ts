/**
 * The byte relay of proxy mode. On Linux the native binding accepts, connects and splices both ways, so bytes
 * never pass through JavaScript; elsewhere Node sockets are piped. Both keep half-closes, apply backpressure and
 * end both sides when either fails, and report open connections, bytes each way and the last activity.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import { native } from "./native.js"

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

/** Accepts on a service's listeners and relays its connections. */
export interface Relayer {
  /** Starts accepting on these listener fds; `onArrive` gets each new connection (to relay or to hold). */
  readonly listen: (fds: ReadonlyArray<number>, onArrive: (conn: Conn) => void) => Effect.Effect<void, never, Scope.Scope>
  /** Relays the connection to the app; closes it if the app refuses. */
  readonly connect: (conn: Conn, target: Target) => void
  /** Closes a connection. */
  readonly close: (conn: Conn) => void
  /** Closes every connection being relayed (held ones are the caller's). */
  readonly closeRelayed: () => void
  /** Is this held connection gone (the client went away)? Only known for the Node relayer. */
  readonly gone: (conn: Conn) => boolean
  readonly stats: Effect.Effect<RelayStats>
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
    listen: (fds, onArrive) =>
      Effect.forEach(fds, (fd) =>
        Effect.acquireRelease(
          Effect.sync(() =>
            n.relayListen(fd, group, (id) => {
              known.add(id)
              closeHandlers.set(id, forget)
              onArrive(id)
            })
          ),
          (watch) => Effect.sync(() => n.relayUnlisten(watch))
        ), { discard: true }).pipe(
          Effect.zipRight(Effect.addFinalizer(() => Effect.sync(() => [...known].forEach((id) => n.relayClose(id)))))
        ),
    connect: (conn, target) => {
      const id = conn as number
      relayed.add(id)
      try {
        if ("path" in target) n.relayConnect(id, target.path, -1, () => {})
        else n.relayConnect(id, target.host, target.port, () => {})
      } catch {
        n.relayClose(id)
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
        lastActivity: stats.ago < 0 ? undefined : Math.floor(clock.unsafeCurrentTimeMillis() - stats.ago)
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
  const touch = () => (lastActivity = clock.unsafeCurrentTimeMillis())
  return {
    listen: (fds, onArrive) =>
      Effect.forEach(fds, (listenerFd) => {
        const server = Net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
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
    connect: (conn, target) => {
      const client = conn as Net.Socket
      const upstream = Net.connect({ ...target, allowHalfOpen: true })
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
    close: (conn) => (conn as Net.Socket).destroy(),
    closeRelayed: () => {
      for (const pair of open) {
        pair.client.destroy()
        pair.upstream.destroy()
      }
    },
    gone: (conn) => gone.has(conn as Net.Socket),
    stats: Effect.sync(() => ({ open: open.size, bytesIn, bytesOut, lastActivity }))
  }
}

/** The best relayer here. */
export const make = (clock: Clock.Clock): Relayer =>
  native().relaySupported() ? nativeRelayer(clock) : nodeRelayer(clock)
