/**
 * SocketService's live implementation over the native binding: listeners opened (or adopted) and revived through
 * os/listeners.ts, pending connections watched with uv_poll, arrivals counted (os/sentinel.ts where the app runs
 * as another user), open connections seen in /proc/net (os/connections.ts).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Address from "../Address.js"
import * as Monotonic from "../core/monotonic.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import { event } from "../Logging.js"
import * as AppListening from "./appListening.js"
import * as Connections from "./connections.js"
import * as Listeners from "./listeners.js"
import { native } from "./native.js"
import { errnoName } from "./nativeErrors.js"
import * as Sentinel from "./sentinel.js"
import { AcceptError, type Arrivals, type Connection, type Listener, type SocketServiceApi, type Wakeup } from "./socketTypes.js"

/**
 * How often the live service looks whether a starting app has accepted (only while it starts). The looks run in C
 * (awaitDrained: a timer on Node's loop, no JavaScript per look); made from JS, a fiber's wake every 20 ms, they
 * were most of soad's CPU while an app started.
 */
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
export const make: Effect.Effect<SocketServiceApi> = Effect.sync(() => {
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

  /** Until no connection is pending on `listeners`: looked at in C every readinessInterval (no JS per look). */
  const drained = (listeners: ReadonlyArray<Listener>): Effect.Effect<void> =>
    Effect.async<void>((resume) => {
      const id = n.awaitDrained(
        listeners.map((listener) => listener.fd),
        Duration.toMillis(readinessInterval),
        (error) => resume(error === null ? Effect.void : Effect.dieMessage(`looking for a pending connection failed: ${error}`))
      )
      return Effect.sync(() => n.cancelDrained(id))
    })

  /** From a second after the start, once a second: an open connection says the app has begun to accept. */
  const openSeen = (listeners: ReadonlyArray<Listener>): Effect.Effect<void> =>
    Effect.sleep(Duration.millis(openLookInterval)).pipe(
      Effect.zipRight(openConnections(listeners)),
      Effect.repeat({ until: (open) => open > 0 }),
      Effect.asVoid
    )

  const awaitAccepting = (listeners: ReadonlyArray<Listener>): Effect.Effect<void> =>
    Effect.suspend(() =>
      listeners.some((listener) => n.pending(listener.fd)) ? Effect.raceFirst(drained(listeners), openSeen(listeners)) : Effect.void
    )

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
