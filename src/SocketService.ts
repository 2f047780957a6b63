/**
 * Listening sockets: open them in a Scope, wait until a connection is pending without accepting it, and see
 * every connection that arrives while the app accepts them.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Address from "./Address.js"
import * as Monotonic from "./core/monotonic.js"
import type * as ServiceConfig from "./ServiceConfig.js"
import * as AppListening from "./os/appListening.js"
import * as Connections from "./os/connections.js"
import * as Listeners from "./os/listeners.js"
import type { ListenError, SocketFileError } from "./os/listeners.js"
import { native } from "./os/native.js"
import { errnoName } from "./os/nativeErrors.js"
import { event } from "./Logging.js"
import * as Sentinel from "./os/sentinel.js"
import { AcceptError, type Arrivals, type Connection, type Listener, type Wakeup } from "./os/socketTypes.js"

export { AcceptError } from "./os/socketTypes.js"
export type { Arrivals, Connection, LatestArrival, Listener, Wakeup } from "./os/socketTypes.js"

/** Opening a listener failed; `message` says what is wrong and what to do. */
export { ListenError } from "./os/listeners.js"

/** A reloaded mode or owner could not be given to a socket file (`replaced`: the file is not soad's any more). */
export { SocketFileError } from "./os/listeners.js"

/** How a listener that no longer listened was brought back: `listen()` again, or a new socket at its address. */
export type { Revival } from "./os/listeners.js"

/** The socket operations the Activator needs. */
export class SocketService extends Context.Tag("soad/SocketService")<SocketService, {
  /** Every connection can be counted on this platform (Linux), not only seen as readability. */
  readonly exactCounting: boolean
  /** Opens (or adopts) a listener; closing the scope closes it and removes the socket file soad created. */
  readonly open: (
    config: Address.ListenerConfig,
    options: ServiceConfig.SocketOptions
  ) => Effect.Effect<Listener, ListenError, Scope.Scope>
  /**
   * Gives the UNIX socket file soad created for the listener the mode and owner of `options` (reload), only if
   * the file at its path is still that socket; does nothing for other listeners.
   */
  readonly applyOptions: (listener: Listener, options: ServiceConfig.SocketOptions) => Effect.Effect<void, SocketFileError>
  /**
   * Brings back a listener that no longer listens: an app shares it (its fd 3) and may shut it down (shutdown(2) at
   * its graceful stop), after which it refuses every connection and polls readable forever. `listen()` again (TCP),
   * else a new socket at the same address with the mode and owner of `options`, at the same fd (a UNIX socket file
   * is replaced only if it is still soad's). undefined: it listens. Fails if it cannot be brought back (an inherited
   * UNIX socket, a port taken meanwhile).
   */
  readonly revive: (listener: Listener, options: ServiceConfig.SocketOptions) => Effect.Effect<Listeners.Revival | undefined, ListenError>
  /**
   * Completes with a listener that has a connection pending (accepts nothing), or with undefined when `wakeup`
   * fires first; interruptible. A listener that was shut down (see `revive`) completes it too: ask `revive`.
   */
  readonly awaitReadable: (listeners: ReadonlyArray<Listener>, wakeup?: Wakeup) => Effect.Effect<Listener | undefined>
  /**
   * `--accept`: takes one connection from the listener, or undefined if none waits any more; closing the scope
   * closes soad's copy of it (right after the instance that serves it has been spawned).
   */
  readonly accept: (listener: Listener) => Effect.Effect<Connection | undefined, AcceptError, Scope.Scope>
  /** Is a connection waiting on any of these listeners right now? */
  readonly isPending: (listeners: ReadonlyArray<Listener>) => Effect.Effect<boolean>
  /**
   * Completes once an app started on these listeners accepts: nothing waits in the backlog any more, or a
   * connection it accepted is open. (No kernel event says so: the live service looks every 20 ms.)
   */
  readonly awaitAccepting: (listeners: ReadonlyArray<Listener>) => Effect.Effect<void>
  /**
   * Watches connections arriving on the listeners until the scope closes. `runAs`: the app runs as that user, so
   * the counting must not let it signal soad.
   */
  readonly arrivals: (
    listeners: ReadonlyArray<Listener>,
    runAs?: ServiceConfig.RunAs | undefined
  ) => Effect.Effect<Arrivals, never, Scope.Scope>
  /** Open connections to the listeners can be seen on this platform (Linux: /proc/net). */
  readonly connectionAware: boolean
  /** How many accepted connections to the listeners are open now (0 where they cannot be seen). */
  readonly openConnections: (listeners: ReadonlyArray<Listener>) => Effect.Effect<number>
  /**
   * The addresses the process group `pgid` listens on by itself, not these listeners (an app that binds its own
   * port instead of taking fd 3); empty where it cannot be seen (Linux only).
   */
  readonly ownListening: (pgid: number, listeners: ReadonlyArray<Listener>) => Effect.Effect<ReadonlyArray<Connections.Endpoint>>
}>() {}

/** How often the live service looks whether a starting app has accepted (only while it starts). */
const readinessInterval = Duration.millis(20)

/**
 * While a start waits, how often the open connections are looked at besides (whether one is pending is looked
 * at every readinessInterval), from a second after the start. They say the app has begun to accept only while
 * more connections wait than it has taken yet (else nothing is pending any more), a backstop; and a look at
 * established TCP sockets walks the kernel's whole table of them, 10 to 17 ms on a 24 GB machine however few
 * sockets it holds (os/connections.ts). Looked at every 20 ms (then for both families) a start cost soad
 * 150 ms of CPU per second, 230 with 20,000 other sockets on the host; once a second, 45 and 44
 * (`BENCH_ONLY=scale npm run bench`).
 */
const openLookInterval = 1000

/** Without exact counting, how often readability is looked at while the app runs. */
const readabilityInterval = Duration.millis(100)

/** The live service over the native binding. */
export const make: Effect.Effect<SocketService["Type"]> = Effect.sync(() => {
  const n = native()
  const inherited = Listeners.takeInherited(process.env, process.pid)
  // Bad LISTEN_* fails the listeners that ask for an inherited socket; for the others it is said once, and ignored.
  let unsaid = inherited.invalid
  const warnInvalidInherited = (config: Address.ListenerConfig) =>
    Effect.suspend(() => {
      if (unsaid === undefined || config.address._tag === "Inherited") return Effect.void
      const why = unsaid
      unsaid = undefined
      return event("warn", "inherited_ignored", `ignoring the LISTEN_* variables soad was given: ${why}`)
    })
  const exactCounting = process.platform === "linux"

  const awaitReadable = (listeners: ReadonlyArray<Listener>, wakeup?: Wakeup): Effect.Effect<Listener | undefined> =>
    Effect.async<Listener | undefined>((resume) => {
      const ids: Array<number> = []
      let unsubscribe: (() => void) | undefined
      const cancel = () => {
        for (const id of ids) n.unwatch(id)
        ids.length = 0
        unsubscribe?.()
      }
      try {
        for (const listener of listeners) {
          ids.push(n.watch(listener.fd, (error) => {
            cancel()
            resume(
              error === null
                ? Effect.succeed(listener)
                : Effect.dieMessage(`watching ${listener.description} failed: ${error}`)
            )
          }))
        }
      } catch (cause) {
        cancel()
        resume(Effect.die(cause))
        return
      }
      // After the watches: a wake already requested fires at once and cancels them.
      if (wakeup !== undefined) {
        unsubscribe = wakeup.subscribe(() => {
          cancel()
          resume(Effect.succeed(undefined))
        })
      }
      return Effect.sync(cancel)
    })

  const accept = (listener: Listener): Effect.Effect<Connection | undefined, AcceptError, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.try({
        try: (): Connection | undefined => {
          const taken = n.acceptConnection(listener.fd)
          if (taken === null) return undefined
          const { fd, ip, port, uid } = taken
          return { fd, remote: ip !== undefined && port !== undefined ? { ip, port } : undefined, uid }
        },
        catch: (cause) =>
          new AcceptError({ code: errnoName(cause), message: `accepting on ${listener.description}: ${(cause as Error).message}` })
      }),
      (connection) => connection === undefined ? Effect.void : Effect.sync(() => n.close(connection.fd))
    )

  const isPending = (listeners: ReadonlyArray<Listener>) =>
    Effect.sync(() => listeners.some((listener) => n.pending(listener.fd)))

  const awaitAccepting = (listeners: ReadonlyArray<Listener>): Effect.Effect<void> =>
    Effect.flatMap(Monotonic.now, (startedAt) => {
      let openLookedAt = startedAt
      const accepting = Effect.gen(function*() {
        if (!(yield* isPending(listeners))) return true
        const now = yield* Monotonic.now
        if (now - openLookedAt < openLookInterval) return false
        openLookedAt = now
        return (yield* openConnections(listeners)) > 0
      })
      return Effect.asVoid(Effect.repeat(accepting, { schedule: Schedule.spaced(readinessInterval), until: (ready) => ready }))
    })

  const counted = (listeners: ReadonlyArray<Listener>): Effect.Effect<Arrivals, never, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.sync(() => listeners.map((listener) => n.countStart(listener.fd))),
      () => Effect.sync(() => listeners.forEach((listener) => n.countStop(listener.fd)))
    ).pipe(
      Effect.flatMap((started) =>
        started.every(Boolean)
          ? Effect.succeed<Arrivals>({
            exact: true,
            latest: Effect.map(Monotonic.now, (now) => {
              let at: number | undefined
              let rearmed = false
              for (const listener of listeners) {
                const read = n.countRead(listener.fd)
                rearmed ||= read.rearmed
                if (read.ago >= 0) at = Math.max(at ?? -Infinity, Math.floor(now - read.ago))
              }
              return { at, rearmed }
            })
          })
          : readability(listeners)
      )
    )

  // Fallback: readability, looked at every readabilityInterval while the app runs, with poll(2). Never with a
  // uv_poll watch: libuv sets O_NONBLOCK on the file description, which the app shares, and a blocking accept()
  // loop in the app would then die with EAGAIN.
  const readability = (listeners: ReadonlyArray<Listener>): Effect.Effect<Arrivals, never, Scope.Scope> =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<number | undefined>(undefined)
      yield* isPending(listeners).pipe(
        Effect.flatMap((pending) => pending ? Effect.flatMap(Monotonic.now, (at) => Ref.set(seen, at)) : Effect.void),
        Effect.repeat(Schedule.spaced(readabilityInterval)),
        Effect.forkScoped
      )
      return {
        exact: false,
        latest: Effect.map(Ref.get(seen), (at) => ({ at, rearmed: false }))
      }
    })

  const arrivals = (
    listeners: ReadonlyArray<Listener>,
    runAs?: ServiceConfig.RunAs | undefined
  ): Effect.Effect<Arrivals, never, Scope.Scope> =>
    !exactCounting
      ? readability(listeners)
      : Sentinel.needed(runAs)
      ? Sentinel.arrivals(n, listeners, runAs, readability)
      : counted(listeners)

  const open = (config: Address.ListenerConfig, options: ServiceConfig.SocketOptions) =>
    Listeners.open(n, inherited, config, options).pipe(
      Effect.tap(() => warnInvalidInherited(config)),
      Effect.map(({ fd, file }): Listener => ({
        name: config.name,
        address: config.address,
        fd,
        description: Address.format(config.address),
        local: n.localAddress(fd),
        file
      })),
      Effect.tap((listener) => Connections.track(listener.local))
    )

  const revive = (listener: Listener, options: ServiceConfig.SocketOptions) =>
    Listeners.revive(n, listener.fd, listener.address, listener.file, options)

  const applyOptions = (listener: Listener, options: ServiceConfig.SocketOptions) =>
    listener.address._tag === "Unix" && listener.file !== undefined
      ? Listeners.applyOptions(n, listener.address.path, listener.file, options)
      : Effect.void

  const connectionAware = Connections.available()
  const openConnections = (listeners: ReadonlyArray<Listener>) =>
    connectionAware
      ? Connections.count(listeners.flatMap((listener) => listener.local === undefined ? [] : [listener.local]))
      : Effect.succeed(0)

  const ownListening = (pgid: number, listeners: ReadonlyArray<Listener>) =>
    Effect.suspend(() => {
      const given = new Set<number>()
      for (const listener of listeners) {
        try {
          given.add(Fs.fstatSync(listener.fd).ino)
        } catch {
          // closed: nothing of the app's can be it
        }
      }
      return AppListening.ownListening(pgid, given)
    })

  return {
    exactCounting,
    open,
    applyOptions,
    revive,
    awaitReadable,
    accept,
    isPending,
    awaitAccepting,
    arrivals,
    connectionAware,
    openConnections,
    ownListening
  }
})

/** The live layer. */
export const layer: Layer.Layer<SocketService> = Layer.effect(SocketService, make)
