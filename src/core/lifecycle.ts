/**
 * What every way of running a service shares (socket hand-off in Activator, relaying in Proxy), under the core in
 * run.ts: the clock in milliseconds, the phase table, what a service knows of itself, its registration for
 * status/wake/sleep, and how a run ends (conclude: stop, count, log, move the backoff).
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as MutableRef from "effect/MutableRef"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Address from "../Address.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import { event } from "../Logging.js"
import * as Counters from "../observe/counters.js"
import type { App, ExitStatus, SpawnRequest, StopPolicy } from "../ProcessService.js"
import { type Handle, Registry, type State, type Status } from "../Registry.js"
import type { Listener, Wakeup } from "../SocketService.js"
import type * as Backoff from "./backoff.js"
import * as Format from "../observe/format.js"
import * as Saving from "../os/saving.js"
import { now } from "./monotonic.js"

/** The one clock for durations (core/monotonic.ts). */
export { now, preciseNow } from "./monotonic.js"

/** The phases of a service's app. */
export type PhaseName = "idle" | "starting" | "running" | "stopping"

/** Where the app of a service is. */
export interface Phase {
  readonly phase: PhaseName
  readonly pid: number | undefined
  readonly startedAt: number | undefined
}

/** No app. */
export const idlePhase: Phase = { phase: "idle", pid: undefined, startedAt: undefined }

/** What moves an app from one phase to the next. */
export type PhaseEvent =
  | { readonly _tag: "Spawned"; readonly pid: number; readonly startedAt: number }
  | { readonly _tag: "Ready" }
  | { readonly _tag: "Stop" }
  | { readonly _tag: "Exited" }

/**
 * The phase table (phase × event → next phase), as s6-supervise keeps its own: an event a phase does not list
 * leaves it as it is (a stop asked of an app already stopping, an exit seen twice). A start that fails before a
 * process exists stays idle; whether the service is failing is the backoff's business.
 */
const phaseTable: { readonly [P in PhaseName]: { readonly [E in PhaseEvent["_tag"]]?: PhaseName } } = {
  idle: { Spawned: "starting" },
  starting: { Ready: "running", Stop: "stopping", Exited: "idle" },
  running: { Stop: "stopping", Exited: "idle" },
  stopping: { Exited: "idle" }
}

/** The phase after `event`, by the table; the pid and start time come with Spawned and go with the exit. */
export const transition = (phase: Phase, event: PhaseEvent): Phase => {
  const next = phaseTable[phase.phase][event._tag]
  if (next === undefined) return phase
  if (next === "idle") return idlePhase
  return event._tag === "Spawned"
    ? { phase: next, pid: event.pid, startedAt: event.startedAt }
    : { phase: next, pid: phase.pid, startedAt: phase.startedAt }
}

/**
 * Moves the service's phase by `event` and tells its tracker's Registry (systemd's STATUS= line); a start or
 * a stop also opens or closes a stopped period of the memory account.
 */
export const enter = (tracker: Tracker, event: PhaseEvent): Effect.Effect<void> =>
  Effect.gen(function*() {
    const at = yield* now
    const [before, after, saving] = yield* modifyKnown(tracker, (known): [readonly [Phase, Phase, number], Known] => {
      const next = transition(known.phase, event)
      const memory = (known.phase.phase === "idle") === (next.phase === "idle")
        ? known.memory
        : next.phase === "idle"
        ? Saving.stopped(known.memory, at)
        : Saving.started(known.memory, at)
      return [[known.phase, next, Saving.savingNow(memory) - Saving.savingNow(known.memory)], { ...known, phase: next, memory }]
    })
    if (before === after) return
    yield* tracker.registry.changed
    // A start or a stop goes into the history (the status page's charts): a start, the change in RAM saved.
    if ((before.phase === "idle") !== (after.phase === "idle")) {
      yield* tracker.registry.record({ starts: after.phase === "idle" ? 0 : 1, saving })
    }
  })

/** The tracker's state changed by `f`, which also gives what the change returns. */
const modifyKnown = <B>(tracker: Tracker, f: (known: Known) => readonly [B, Known]): Effect.Effect<B> =>
  Effect.sync(() => {
    const [result, next] = f(MutableRef.get(tracker.state))
    MutableRef.set(tracker.state, next)
    return result
  })

/** The tracker's state changed by `f`. */
export const updateKnown = (tracker: Tracker, f: (known: Known) => Known): Effect.Effect<void> =>
  Effect.sync(() => void MutableRef.update(tracker.state, f))

/** Samples the running app's memory into the account, at once; the state after. */
const sampleNow = (tracker: Tracker): Known => {
  const known = MutableRef.get(tracker.state)
  if (known.phase.pid === undefined) return known
  const sampled = { ...known, memory: Saving.sampled(known.memory, Saving.sample(known.phase.pid)) }
  MutableRef.set(tracker.state, sampled)
  return sampled
}

/** Samples the running app's memory into the account (status and metrics reads, and each stop). */
export const sampleMemory = (tracker: Tracker): Effect.Effect<void> => Effect.sync(() => void sampleNow(tracker))

/** Keeps why the app last failed (a start that failed, a crash), for `soad status` and `soad wake`. */
export const failedWith = (tracker: Tracker, message: string): Effect.Effect<void> =>
  Effect.flatMap(now, (at) => updateKnown(tracker, (known) => ({ ...known, lastError: { message, at } })))

/** The app's STATUS= (`--ready notify`), or undefined when a run begins or ends. */
export const setAppStatus = (tracker: Tracker, text: string | undefined): Effect.Effect<void> =>
  updateKnown(tracker, (known) => ({ ...known, appStatus: text }))

/** The current run (undefined: none), for `soad sleep` and the budget. */
export const setRun = (tracker: Tracker, run: CurrentRun | undefined): Effect.Effect<void> =>
  updateKnown(tracker, (known) => ({ ...known, run }))

/** What the service knows of itself now. */
export const known = (tracker: Tracker): Effect.Effect<Known> => Effect.sync(() => MutableRef.get(tracker.state))

/**
 * Why a service's apps are stopped when it is interrupted: unset, soad is shutting down; whoever interrupts a
 * service for another reason (a reload) sets it first, in the Ref the service's fiber was given. The shell reads it
 * once (Service.stopReason): the one place every mode learns why its apps stop.
 */
export const stopReason: FiberRef.FiberRef<Ref.Ref<string | undefined> | undefined> = FiberRef.unsafeMake<
  Ref.Ref<string | undefined> | undefined
>(undefined)

/**
 * Why a service's app can never start as configured (its command is not on its PATH, its cwd is missing), found
 * when it is launched: the service starts failed, with this as its last error, until a reload or `soad wake`.
 */
export const cannotRun: FiberRef.FiberRef<string | undefined> = FiberRef.unsafeMake<string | undefined>(undefined)

/** The current run: a way to ask it to stop (eviction, sleep), completed once the app has stopped. */
export interface CurrentRun {
  readonly stop: Deferred.Deferred<string>
  readonly done: Deferred.Deferred<void>
  readonly lastActivity: Effect.Effect<number>
}

/** What a service knows of itself, in one record (one Ref a service: an idle service costs little). */
export interface Known {
  readonly phase: Phase
  /** The current run, while there is one. */
  readonly run: CurrentRun | undefined
  /** The app's peak memory and the RAM-time saved while it was stopped. */
  readonly memory: Saving.Account
  /** Why the app last failed, and when (Clock ms). */
  readonly lastError: { readonly message: string; readonly at: number } | undefined
  /** `--ready notify`: the app's latest STATUS= text in the current run. */
  readonly appStatus: string | undefined
  /** The latest start (Clock ms) and its cold-start time once the app was ready. */
  readonly lastStart: Status["lastStart"]
  /** Its counts since the service began (`soad status`); `count` adds to them and to the metrics at once. */
  readonly counts: Counters.Counts
}

/** What a service knows of itself, for `soad status`, the metrics and `wake`/`sleep`. */
export interface Tracker {
  readonly service: string
  /** Read and changed at once (no effect of its own: a status of 1,000 services reads 1,000 of them). */
  readonly state: MutableRef.MutableRef<Known>
  /** `wake` requests, for whoever waits for them. */
  readonly wake: WakeSignal
  /** Where its phase changes go (`soad status`, the history), and where it registers. */
  readonly registry: Registry["Type"]
}

/** Counts one activation, idle stop, crash or failed start: the service's counter, which status reads back. */
export const count = (tracker: Tracker, key: keyof Counters.Counts): Effect.Effect<void> =>
  Effect.zipRight(
    updateKnown(tracker, (known) => ({ ...known, counts: { ...known.counts, [key]: known.counts[key] + 1 } })),
    Counters.count(tracker.service, key)
  )

/**
 * Logs that the service is failing and when it tries again; or, once the start limit is reached, that it has
 * given up (`failed`): what waits is refused until `soad wake`, `soad restart` or a reload.
 */
export const logFailing = (state: Backoff.BackoffState, at: number, config?: ServiceConfig.ServiceConfig) =>
  state.gaveUp
    ? event(
      "error",
      "failed",
      `failed: ${state.failures} failures in a row` +
        (config === undefined
          ? ""
          : ` (${config.startLimitBurst} within ${Format.seconds(Duration.toMillis(config.startLimitInterval))}: start-limit-burst)`) +
        "; connections are refused until soad wake, soad restart or a reload",
      { failures: state.failures }
    )
    : event(
      "warn",
      "failing",
      `failing: next try in ${Format.seconds(Math.max(0, state.notBefore - at))}, ` +
        `${state.failures} failure${state.failures === 1 ? "" : "s"} in a row`,
      { failures: state.failures, next_try_ms: Math.max(0, state.notBefore - at) }
    )

/**
 * The service's status at Clock ms `at`, as `soad status` and the metrics see it, with the running app's latest
 * activity (`lastActivity`, an effect of the run: read by statusOf). Read at once: a status of 1,000 services,
 * mostly stopped, is 1,000 reads, not 1,000 small programs.
 */
const statusAt = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  tracker: Tracker,
  backoff: Backoff.Backoff,
  at: number,
  lastActivity: number | undefined
): Status => {
  const known = sampleNow(tracker)
  const { appStatus, lastError, lastStart, memory, phase: { phase, pid, startedAt } } = known
  const { failures, gaveUp } = backoff.current()
  const state: State = phase === "idle" ? (gaveUp ? "failed" : failures > 0 ? "failing" : "stopped") : phase
  return {
    name: config.name,
    state,
    pid,
    startedAt,
    lastActivity,
    ...known.counts,
    listeners,
    peakMemory: Saving.peak(memory, pid !== undefined),
    savedByteSeconds: Saving.savedAt(memory, at) / 1000,
    lastError,
    appStatus,
    lastStart
  }
}

/** The run whose latest activity a status needs (the app runs), or undefined. */
const activeRun = (tracker: Tracker): CurrentRun | undefined => {
  const { phase, run } = MutableRef.get(tracker.state)
  return phase.pid !== undefined ? run : undefined
}

/** The service's status now: statusAt, with the running app's latest activity read from its run. */
const statusOf = (config: ServiceConfig.ServiceConfig, listeners: ReadonlyArray<Listener>, tracker: Tracker, backoff: Backoff.Backoff) =>
  Effect.flatMap(now, (at): Effect.Effect<Status> => {
    const run = activeRun(tracker)
    return run !== undefined
      ? Effect.map(run.lastActivity, (activity) => statusAt(config, listeners, tracker, backoff, at, activity))
      : Effect.sync(() => statusAt(config, listeners, tracker, backoff, at, undefined))
  })

/** `soad wake` requests: fired by the control socket, heard by the service's wait (a Wakeup). */
export interface WakeSignal extends Wakeup {
  readonly fire: () => void
}

/** A wake signal; a request made while nobody waits is kept until someone does. */
const makeWakeSignal = (): WakeSignal => {
  let listener: (() => void) | undefined
  let pending = false
  return {
    fire: () => {
      if (listener !== undefined) listener()
      else pending = true
    },
    subscribe: (callback) => {
      if (pending) {
        pending = false
        callback()
        return () => {}
      }
      listener = callback
      return () => {
        if (listener === callback) listener = undefined
      }
    }
  }
}

/** A fresh tracker for `service`, reporting to the Registry. */
export const makeTracker = (service: string): Effect.Effect<Tracker, never, Registry> =>
  Effect.gen(function*() {
    return {
      service,
      state: MutableRef.make<Known>({
        phase: idlePhase,
        run: undefined,
        memory: Saving.empty,
        lastError: undefined,
        appStatus: undefined,
        lastStart: undefined,
        counts: Counters.zero
      }),
      wake: makeWakeSignal(),
      registry: yield* Registry
    }
  })

/** What a mode adds to its service's registration: figures, and its own wake and sleep. */
export interface Registered {
  /** Applies a config whose changes the running app does not see (see Services' reload). */
  readonly update?: ((config: ServiceConfig.ServiceConfig) => Effect.Effect<void>) | undefined
  readonly status?: Effect.Effect<Partial<Status>> | undefined
  readonly wake?: Effect.Effect<string> | undefined
  readonly sleep?: Effect.Effect<string> | undefined
}

/** Registers the service with its tracker's Registry, for status, wake and sleep. */
export const register = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  tracker: Tracker,
  backoff: Backoff.Backoff,
  mode: Registered = {}
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const registry = tracker.registry
    // A service that goes (a reload, a removal, soad's exit) takes its share of the saving out of the history. Its
    // runs have ended by then: each run's scope lies inside the service's, so no phase change comes after this.
    // (Scope.addFinalizer: Effect.addFinalizer would keep a copy of the fiber's FiberRefs with every service.)
    yield* Scope.addFinalizer(
      yield* Effect.scope,
      Effect.flatMap(known(tracker), (state) => registry.record({ saving: -Saving.savingNow(state.memory) }))
    )
    yield* registry.register(new Registration(config, listeners, tracker, backoff, mode))
  })

/**
 * A service's registration. Its effects are made when asked for, by getters on the class (shared by every
 * instance): with 1,000 services, effects kept per service add up, and getters in an object literal give each
 * object a dictionary of its properties (448 bytes).
 */
class Registration implements Handle {
  readonly name: string
  readonly update?: (config: ServiceConfig.ServiceConfig) => Effect.Effect<void>
  constructor(
    readonly config: ServiceConfig.ServiceConfig,
    readonly listeners: ReadonlyArray<Listener>,
    readonly tracker: Tracker,
    readonly backoff: Backoff.Backoff,
    readonly mode: Registered
  ) {
    this.name = config.name
    if (mode.update !== undefined) this.update = mode.update
  }
  /** A failed service (its start limit reached) starts over when asked by hand. */
  get reset(): Effect.Effect<boolean> {
    const { backoff } = this
    return Effect.gen(function*() {
      if (!(yield* backoff.state).gaveUp) return false
      yield* backoff.reset
      yield* event("info", "reset", "the failed service tries again, as asked")
      return true
    })
  }
  get failed(): Effect.Effect<boolean> {
    return Effect.map(this.backoff.state, (state) => state.gaveUp)
  }
  get status(): Effect.Effect<Status> {
    const { backoff, config, listeners, mode, tracker } = this
    const status = statusOf(config, listeners, tracker, backoff)
    return mode.status === undefined ? status : Effect.zipWith(status, mode.status, (status, more) => ({ ...status, ...more }))
  }
  statusAt(at: number): Status | undefined {
    const { backoff, config, listeners, mode, tracker } = this
    return mode.status === undefined && activeRun(tracker) === undefined
      ? statusAt(config, listeners, tracker, backoff, at, undefined)
      : undefined
  }
  get wake(): Effect.Effect<string> {
    return this.mode.wake !== undefined ? Effect.zipRight(this.reset, this.mode.wake) : wake(this.tracker, this.backoff, this.reset)
  }
  get sleep(): Effect.Effect<string> {
    return this.mode.sleep ?? sleep(this.tracker)
  }
}

/** `soad wake` of a mode that runs one app at a time: start it now, even while it backs off. */
const wake = (tracker: Tracker, backoff: Backoff.Backoff, reset: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    if ((yield* known(tracker)).phase.phase !== "idle") return "already running"
    if (yield* reset) {
      yield* Effect.sync(() => tracker.wake.fire())
      return "failed; trying again, as asked"
    }
    yield* Effect.sync(() => tracker.wake.fire())
    const { failures, notBefore } = yield* backoff.state
    const at = yield* now
    if (failures === 0 || notBefore <= at) return "starting"
    // Backing off: say so, and why; the wake itself does not wait for the backoff.
    const last = (yield* known(tracker)).lastError
    return `failing: next try in ${Format.seconds(notBefore - at)} (${failures} failure${failures === 1 ? "" : "s"} in a row` +
      `${last === undefined ? "" : `; last: ${last.message}`}); trying now, as asked`
  })

/** `soad sleep` of a mode that runs one app at a time: stop its app now. */
const sleep = (tracker: Tracker) =>
  Effect.gen(function*() {
    const { phase, run } = yield* known(tracker)
    if (run === undefined || phase.pid === undefined) return "not running"
    yield* Deferred.succeed(run.stop, "on request (soad sleep)")
    yield* Deferred.await(run.done)
    return "stopped"
  })

/**
 * The login variables of the user an app runs as (as login(1) and systemd's User= set them), so it never sees
 * soad's HOME or USER; the service's own env overrides them. A uid without a passwd entry gets HOME=/.
 */
const userEnvironment = (user: ServiceConfig.RunAs | undefined): Record<string, string> => {
  if (user === undefined) return {}
  const name = user.name ?? String(user.uid)
  return {
    HOME: user.home !== undefined && user.home !== "" ? user.home : "/",
    USER: name,
    LOGNAME: name,
    ...(user.shell !== undefined && user.shell !== "" ? { SHELL: user.shell } : {})
  }
}

/** FNV-1a, 32 bits, as 8 hex digits: a short stable tag, not a secret. */
export const shortHash = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0
  return hash.toString(16).padStart(8, "0")
}

/**
 * The service's stable name for its processes (its cgroup): its name and a hash of its first listener's address,
 * the same for every soad that serves that address, so a soad finds what a killed one left.
 */
export const unitOf = (config: ServiceConfig.ServiceConfig): string => {
  const first = config.listeners[0]
  const name = config.name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40)
  return `${name}-${shortHash(first === undefined ? "" : Address.format(first.address))}`
}

/** How the service's apps are stopped: its shutdown signal, then SIGKILL after its stop timeout. */
export const stopPolicy = (config: ServiceConfig.ServiceConfig): StopPolicy => ({
  signal: config.shutdownSignal,
  timeout: config.stopTimeout
})

/** What the app is started with: its command, environment, user, and the listeners as fds 3, 4, … */
export const spawnRequest = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  env: Readonly<Record<string, string>> = {}
): SpawnRequest => ({
  command: config.command,
  env: { ...userEnvironment(config.user), ...config.env, ...env },
  inheritEnv: config.inheritEnv,
  cwd: config.cwd,
  fds: listeners.map((listener) => listener.fd),
  fdNames: listeners.map((listener) => listener.name),
  uid: config.user?.uid,
  gid: config.user?.gid,
  groups: config.user?.groups,
  unit: unitOf(config),
  service: config.name
})

/** How a run of the app ended. */
export type Outcome =
  | { readonly _tag: "Exited"; readonly status: ExitStatus }
  | { readonly _tag: "Idle"; readonly idleFor: number }
  | { readonly _tag: "NotReady" }
  | { readonly _tag: "Stopped"; readonly reason: string }

/** One run of an app, for logging its stop and exit. */
export interface Run {
  readonly config: ServiceConfig.ServiceConfig
  readonly tracker: Tracker
  readonly backoff: Backoff.Backoff
  readonly app: App
  readonly startedAt: number
  /** What the mode does as soon as its app is asked to stop (proxy: hold new connections instead of relaying them). */
  readonly onStop?: Effect.Effect<void> | undefined
  /** Why the service's apps are stopped when it is interrupted (unset: soad is shutting down). */
  readonly stopReason: Ref.Ref<string | undefined>
}

/** Logs how the app exited. */
const logExit = (run: Run, status: ExitStatus, byItself: boolean, level: "info" | "warn" = "info") =>
  Effect.flatMap(now, (t) =>
    event(
      level,
      "exited",
      `app exited${byItself ? " by itself" : ""} (${Format.exit(status)}, uptime ${Format.seconds(t - run.startedAt)})`,
      { pid: run.app.pid, code: status.code, signal: status.signal, uptime_ms: t - run.startedAt, by_itself: byItself }
    ))

/** Stops the app gracefully (shutdown signal, SIGKILL after the stop timeout) and logs why; its exit status. */
const stopApp = (run: Run, reason: string, message: string, fields: Record<string, number> = {}) =>
  Effect.gen(function*() {
    if (run.onStop !== undefined) yield* run.onStop
    yield* sampleMemory(run.tracker)
    yield* enter(run.tracker, { _tag: "Stop" })
    yield* event("info", "stopping", message, { pid: run.app.pid, reason, ...fields })
    const status = yield* run.app.stop
    return status
  })

/**
 * What follows an outcome: stop the app if it still runs, count it, log it, move the backoff. A run that failed
 * (the app did not come up, or crashed within min-uptime) says why, for what the mode held for it.
 */
export const conclude = (run: Run, outcome: Outcome, notReady: string): Effect.Effect<{ readonly failed?: string }> =>
  Effect.gen(function*() {
    const { app, backoff, config, tracker } = run
    switch (outcome._tag) {
      case "NotReady": {
        const timeout = Duration.toMillis(config.startTimeout)
        yield* event("warn", "not_ready", `the app (pid ${app.pid}) ${notReady} within ${Format.seconds(timeout)}: stopping it`, {
          pid: app.pid,
          start_timeout_ms: timeout
        })
        const status = yield* stopApp(run, "not_ready", `stopping the app (pid ${app.pid})`)
        yield* failedWith(tracker, `the app ${notReady} within ${Format.seconds(timeout)}`)
        const state = yield* backoff.failed
        yield* count(tracker, "failedStarts")
        yield* logExit(run, status, false, "warn")
        yield* logFailing(state, yield* now, config)
        return { failed: "the app did not come up" }
      }
      case "Stopped": {
        yield* logExit(run, yield* stopApp(run, "requested", `stopping the app (pid ${app.pid}) ${outcome.reason}`), false)
        yield* backoff.reset
        return {}
      }
      case "Idle": {
        const status = yield* stopApp(
          run,
          "idle",
          `stopping the app (pid ${app.pid}, idle for ${Format.seconds(outcome.idleFor)}) with ${config.shutdownSignal.name}`,
          { idle_ms: outcome.idleFor }
        )
        yield* count(tracker, "idleStops")
        yield* logExit(run, status, false)
        yield* backoff.reset
        return {}
      }
      case "Exited": {
        const uptime = (yield* now) - run.startedAt
        if (uptime < Duration.toMillis(config.minUptime)) {
          yield* failedWith(tracker, `the app exited by itself after ${Format.seconds(uptime)} (${Format.exit(outcome.status)})`)
          const state = yield* backoff.failed
          yield* count(tracker, "crashes")
          yield* logExit(run, outcome.status, true, "warn")
          yield* logFailing(state, yield* now, config)
          return { failed: "the app exited before it came up" }
        }
        yield* backoff.reset
        if (outcome.status.code !== 0) {
          yield* failedWith(tracker, `the app exited by itself after ${Format.seconds(uptime)} (${Format.exit(outcome.status)})`)
        }
        yield* logExit(run, outcome.status, true, outcome.status.code === 0 ? "info" : "warn")
        return {}
      }
    }
  })

/** On interruption (soad shutting down, or a reload: see stopReason): stop the app and log why and its exit. */
export const onShutdown = (run: Run) =>
  Effect.onInterrupt(() =>
    Effect.gen(function*() {
      const why = yield* Ref.get(run.stopReason)
      const signal = run.config.shutdownSignal.name
      const status = yield* why === undefined
        ? stopApp(run, "shutdown", `soad is shutting down: stopping the app (pid ${run.app.pid}) with ${signal}`)
        : stopApp(run, "reload", `stopping the app (pid ${run.app.pid}) ${why} with ${signal}`)
      yield* logExit(run, status, false)
    })
  )
