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
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Address from "./Address.js"
import type * as Config from "./Config.js"
import * as Listeners from "./internal/listeners.js"
import type { ListenError } from "./internal/listeners.js"
import { native } from "./internal/native.js"

/** An open listening socket. */
export interface Listener {
  /** The name the app sees in `LISTEN_FDNAMES`. */
  readonly name: string
  readonly address: Address.Address
  /** soad's own fd for it; the app gets it at 3, 4, … */
  readonly fd: number
  /** The address as a user writes it, for logs. */
  readonly description: string
}

/** Connections arriving on a set of listeners while they are watched. */
export interface Arrivals {
  /** Each connection is counted (true), or only readability is seen (false: some may be missed). */
  readonly exact: boolean
  /** Waits for the next connections; returns how many arrived since the last take. */
  readonly take: Effect.Effect<number>
  /** Makes sure counting still works (an app may clear O_ASYNC); true if it had stopped and was restored. */
  readonly rearm: Effect.Effect<boolean>
}

/** Opening a listener failed; `message` says what is wrong and what to do. */
export { ListenError } from "./internal/listeners.js"

/** The socket operations the Activator needs. */
export class SocketService extends Context.Tag("soad/SocketService")<SocketService, {
  /** Every connection can be counted on this platform (Linux), not only seen as readability. */
  readonly exactCounting: boolean
  /** Opens (or adopts) a listener; closing the scope closes it and removes the socket file soad created. */
  readonly open: (
    config: Address.ListenerConfig,
    options: Config.SocketOptions
  ) => Effect.Effect<Listener, ListenError, Scope.Scope>
  /** Completes with a listener that has a connection pending; accepts nothing; interruptible. */
  readonly awaitReadable: (listeners: ReadonlyArray<Listener>) => Effect.Effect<Listener>
  /** Is a connection waiting on any of these listeners right now? */
  readonly isPending: (listeners: ReadonlyArray<Listener>) => Effect.Effect<boolean>
  /** Watches connections arriving on the listeners until the scope closes. */
  readonly arrivals: (listeners: ReadonlyArray<Listener>) => Effect.Effect<Arrivals, never, Scope.Scope>
}>() {}

/** Without exact counting, how often readability is looked at while the app runs. */
const readabilityInterval = Duration.millis(100)

/** The live service over the native binding. */
export const make: Effect.Effect<SocketService["Type"]> = Effect.sync(() => {
  const n = native()
  const inherited = Listeners.takeInherited(process.env, process.pid)
  const exactCounting = process.platform === "linux"

  const awaitReadable = (listeners: ReadonlyArray<Listener>): Effect.Effect<Listener> =>
    Effect.async<Listener>((resume) => {
      const ids: Array<number> = []
      const cancel = () => {
        for (const id of ids) n.unwatch(id)
        ids.length = 0
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
      }
      return Effect.sync(cancel)
    })

  const isPending = (listeners: ReadonlyArray<Listener>) =>
    Effect.sync(() => listeners.some((listener) => n.pending(listener.fd)))

  const countedArrivals = (listeners: ReadonlyArray<Listener>) =>
    Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number>()
      const counted: Array<Listener> = []
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          for (const listener of listeners) {
            if (!n.countWatch(listener.fd, (k) => Queue.unsafeOffer(queue, k))) return false
            counted.push(listener)
          }
          return true
        }),
        () => Effect.sync(() => counted.forEach((listener) => n.countUnwatch(listener.fd)))
      )
      return counted.length === listeners.length ? queue : undefined
    })

  const arrivals = (listeners: ReadonlyArray<Listener>): Effect.Effect<Arrivals, never, Scope.Scope> =>
    Effect.gen(function*() {
      const queue = exactCounting ? yield* countedArrivals(listeners) : undefined
      if (queue !== undefined) {
        return {
          exact: true,
          take: Effect.zipWith(Queue.take(queue), Queue.takeAll(queue), (first, rest) => {
            let sum = first
            for (const k of rest) sum += k
            return sum
          }),
          rearm: Effect.sync(() => listeners.map((l) => n.countArm(l.fd)).some((wasArmed) => !wasArmed))
        }
      }
      // Fallback: readability, looked at no more often than every readabilityInterval.
      const seen = yield* Queue.sliding<number>(1)
      yield* awaitReadable(listeners).pipe(
        Effect.zipRight(Queue.offer(seen, 1)),
        Effect.zipRight(Effect.sleep(readabilityInterval)),
        Effect.forever,
        Effect.forkScoped
      )
      return { exact: false, take: Queue.take(seen), rearm: Effect.succeed(false) }
    })

  const open = (config: Address.ListenerConfig, options: Config.SocketOptions) =>
    Listeners.open(n, inherited, config, options).pipe(
      Effect.map((fd): Listener => ({
        name: config.name,
        address: config.address,
        fd,
        description: Address.format(config.address)
      }))
    )

  return { exactCounting, open, awaitReadable, isPending, arrivals }
})

/** The live layer. */
export const layer: Layer.Layer<SocketService> = Layer.effect(SocketService, make)
