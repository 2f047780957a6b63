/**
 * Where each running service can be seen and steered: its state and figures for `soad status` and the metrics,
 * and `wake`/`sleep` to start or stop its app by hand. Activators register themselves with the Registry of their
 * context (each needs one: `layer`, which `SoadContext.defaults` provides too).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Monotonic from "./core/monotonic.js"
import * as History from "./observe/history.js"
import type * as ServiceConfig from "./ServiceConfig.js"
import type { Listener } from "./SocketService.js"

/** Where a service's app stands. */
export type State = "stopped" | "starting" | "running" | "stopping" | "failing" | "failed"

/** The states, in the order the metrics list them. */
export const states: ReadonlyArray<State> = ["stopped", "starting", "running", "stopping", "failing", "failed"]

/** A service as `soad status` shows it. */
export interface Status {
  readonly name: string
  readonly state: State
  /** The app's pid while it runs. */
  readonly pid: number | undefined
  /** Clock millis when the current run started. */
  readonly startedAt: number | undefined
  /** Clock millis of the latest connection seen (or of the start). */
  readonly lastActivity: number | undefined
  readonly activations: number
  readonly idleStops: number
  readonly crashes: number
  readonly failedStarts: number
  readonly listeners: ReadonlyArray<Listener>
  /** `--accept`: the instances running now (one per connection); `activations` counts the connections served. */
  readonly instances?: number
  /** Proxy mode: the connections soad relays (or holds) now; elsewhere read from /proc/net. */
  readonly openConnections?: number
  /** Proxy mode: bytes relayed from clients to the app (in) and back (out). */
  readonly relayedBytes?: { readonly in: number; readonly out: number }
  /** Proxy mode with `--waiting-page`: the waiting pages served so far. */
  readonly waitingPages?: number
  /** The app's peak memory while it ran (this run's, else the latest run's); undefined before any sample. */
  readonly peakMemory?: number | undefined
  /** RAM-time saved while the app was stopped: its peak memory × the time stopped, in byte-seconds. */
  readonly savedByteSeconds?: number
  /** `--ready notify`: the app's latest STATUS= text in this run, if it sent one. */
  readonly appStatus?: string | undefined
  /** Why the app last failed (a start that failed, a crash) and when (Clock ms). */
  readonly lastError?: { readonly message: string; readonly at: number } | undefined
  /**
   * The app's latest start (Clock ms; accept mode: the latest instance's) and, once it was ready, how long it took
   * from the connection (or `soad wake`) to the app's first accept or READY=1.
   */
  readonly lastStart?: { readonly at: number; readonly coldStartMs: number | undefined } | undefined
}

/** What a registered service offers. */
export interface Handle {
  readonly name: string
  readonly status: Effect.Effect<Status>
  /**
   * The status at Clock ms `now` when it can be read at once, without an effect (a service whose app is not
   * running, as most of a thousand are); undefined: read `status`. See `statusesOf`.
   */
  readonly statusAt?: (now: number) => Status | undefined
  /** Starts the app now, if it is not running; says what happened. */
  readonly wake: Effect.Effect<string>
  /** Stops the app now, if it runs; the next connection starts it again. Says what happened. */
  readonly sleep: Effect.Effect<string>
  /** A failed service (its start limit reached) starts over: true if it was failed (a reload does this). */
  readonly reset?: Effect.Effect<boolean>
  /** Is it failed (its start limit reached, or its app cannot run)? */
  readonly failed?: Effect.Effect<boolean>
  /** Takes a config that differs only in what the running app does not see (a reload's "updated"). */
  readonly update?: (config: ServiceConfig.ServiceConfig) => Effect.Effect<void>
}

/** The services of this soad. */
export class Registry extends Context.Tag("soad/Registry")<Registry, {
  /** Adds a service for as long as the scope is open. */
  readonly register: (handle: Handle) => Effect.Effect<void, never, Scope.Scope>
  /** Every registered service, in registration order. */
  readonly services: Effect.Effect<ReadonlyArray<Handle>>
  /** Says that a service's app started or stopped (the lifecycle's phase changes call it). */
  readonly changed: Effect.Effect<void>
  /**
   * Waits for the next change (an app started or stopped, a service registered or gone); changes made while
   * nobody waits count as one. For a single watcher (systemd's STATUS= line).
   */
  readonly nextChange: Effect.Effect<void>
  /** Adds to the history of every service's starts and RAM saved (the status page's charts), at the Clock's time. */
  readonly record: (change: History.Change) => Effect.Effect<void>
  /** That history, brought up to the Clock's time. */
  readonly history: Effect.Effect<History.Snapshot>
}>() {}

/**
 * The status of each of `handles`, in their order, read at one Clock time: at once where a handle can
 * (`statusAt`), through its `status` effect where it cannot (a running app's latest activity, a mode's figures).
 * A status of 1,000 services is then a thousand reads, not a thousand effects run one after another.
 */
export const statusesOf = (handles: ReadonlyArray<Handle>): Effect.Effect<ReadonlyArray<Status>> =>
  Effect.flatMap(Monotonic.now, (now) => {
    const read: Array<Status> = new Array(handles.length)
    const pending: Array<number> = []
    for (let i = 0; i < handles.length; i++) {
      const status = handles[i]!.statusAt?.(now)
      if (status === undefined) pending.push(i)
      else read[i] = status
    }
    if (pending.length === 0) return Effect.succeed(read)
    return Effect.as(Effect.forEach(pending, (i) => Effect.map(handles[i]!.status, (status) => void (read[i] = status)), { discard: true }), read)
  })

/** An empty registry, its history beginning now. */
export const make: Effect.Effect<Registry["Type"]> = Effect.gen(function*() {
  const changes = yield* Queue.sliding<void>(1)
  const handles = new Map<string, Handle>()
  const changed = Queue.offer(changes, undefined).pipe(Effect.asVoid)
  const history = History.make(yield* Monotonic.now)
  return {
    // Scope.addFinalizer, not Effect.acquireRelease: that keeps a copy of the fiber's FiberRefs with every
    // service's registration, and taking a handle out needs none of them.
    register: (handle) =>
      Effect.uninterruptible(Effect.flatMap(Effect.scope, (scope) =>
        Effect.zipRight(
          Effect.zipLeft(Effect.sync(() => handles.set(handle.name, handle)), changed),
          Scope.addFinalizer(
            scope,
            Effect.zipLeft(Effect.sync(() => handles.get(handle.name) === handle && handles.delete(handle.name)), changed)
          )
        ))),
    services: Effect.sync(() => [...handles.values()]),
    changed,
    nextChange: Queue.take(changes),
    record: (change) => Effect.flatMap(Monotonic.now, (at) => Effect.sync(() => history.record(at, change))),
    history: Effect.flatMap(Monotonic.now, (at) => Effect.sync(() => history.snapshot(at)))
  }
})

/** The registry as a layer. */
export const layer: Layer.Layer<Registry> = Layer.effect(Registry, make)
