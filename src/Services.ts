/**
 * Many services in one soad: each its own scoped fiber (an Activator), all under one RAM budget, reloaded from
 * the config file on demand. A reload starts new services, stops removed ones, restarts changed ones and leaves
 * the rest alone; a listener whose address stays in the config stays open, so no connection is lost. New listeners
 * are opened before anything stops: a changed service whose new listener cannot be opened keeps running as it was.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Activator from "./Activator.js"
import * as Address from "./Address.js"
import * as Budget from "./Budget.js"
import * as ServiceConfig from "./ServiceConfig.js"
import { event } from "./Logging.js"
import * as ConfigFile from "./ConfigFile.js"
import { cannotRun, stopReason, unitOf } from "./core/lifecycle.js"
import { ListenError } from "./os/listeners.js"
import { ProcessService } from "./ProcessService.js"
import { type Handle, Registry } from "./Registry.js"
import { type Listener, SocketService } from "./SocketService.js"

/** An open listener shared by whichever services use its address. */
interface Pooled {
  readonly listener: Listener
  readonly scope: Scope.CloseableScope
  /** The service that uses it (its lines carry its name). */
  service: string
}

/** A running service. */
interface Running {
  readonly config: ServiceConfig.ServiceConfig
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  /** Why it is stopped, when it is stopped for a reload (its app logs it); unset, soad is shutting down. */
  readonly stopReason: Ref.Ref<string | undefined>
}

/**
 * The keys a reload applies to a running service in place: they change how soad watches and stops the app, not
 * what the app was started with (its command, environment, sockets, user), so the app keeps running. Each takes
 * effect at its next use: -t at the next look, the stop's signal and timeout at the next stop of a new run.
 */
const inPlace: ReadonlySet<string> = new Set([
  "time-until-stop",
  "idle-ignores-open-connections",
  "start-timeout",
  "stop-timeout",
  "shutdown-signal",
  "min-uptime",
  "max-backoff",
  "start-limit-burst",
  "start-limit-interval"
])

/** The config keys by which two configs of a service differ, as the config file names them. */
export const changedKeys = (a: ServiceConfig.ServiceConfig, b: ServiceConfig.ServiceConfig): Array<string> => {
  const names: Record<string, string> = {
    listeners: "listen",
    socket: "socket options",
    idleTimeout: "time-until-stop",
    user: "user"
  }
  const [flatA, flatB] = [settings(a), settings(b)]
  const keys = [...new Set([...Object.keys(flatA), ...Object.keys(flatB)])]
  return keys
    .filter((key) => !ServiceConfig.same(flatA[key], flatB[key]))
    .map((key) => names[key] ?? key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`))
}

/**
 * A config with its mode spread out into the settings the file names (`upstream`, `max-held`, `accept`,
 * `max-connections`, …), so a reload says which of them changed, as it said when they were fields of their own: a
 * service outside accept mode counts as having accept mode's defaults (a move to accept mode with 64 connections
 * changed `accept` alone).
 */
const settings = (config: ServiceConfig.ServiceConfig): Record<string, unknown> => {
  const { mode, ...rest } = config
  const { defaults } = ServiceConfig
  const accept = mode._tag === "Accept" ? mode : undefined
  const proxy = mode._tag === "Proxy" ? mode : undefined
  return {
    ...rest,
    upstream: proxy?.upstream,
    maxHeld: proxy?.maxHeld,
    waitingPage: proxy?.waitingPage,
    accept: accept !== undefined,
    maxConnections: accept?.maxConnections ?? defaults.maxConnections,
    maxConnectionsPerSource: accept?.maxConnectionsPerSource,
    maxAcceptRate: accept?.maxAcceptRate ?? defaults.maxAcceptRate
  }
}

const keyOf = (listener: Address.ListenerConfig) => Address.format(listener.address)

/** What applying a config did: the `reloaded` event's message, and whether every service is as the file says. */
export interface Applied {
  readonly summary: string
  /** No service was kept as it was or left unstarted because a listener could not be opened. */
  readonly complete: boolean
}

/**
 * What hosting services needs of its context: the Activator's, less the Budget (the file's own is made here and
 * given to each service).
 */
export type Requirements = Exclude<Activator.Requirements, Budget.Budget>

/** The services of one config file, running: apply a new config to them. */
export interface Services {
  /** Applies a new config: start, stop, restart what changed; says what it did. */
  readonly apply: (file: ConfigFile.FileConfig) => Effect.Effect<Applied>
}

/**
 * Starts every service of `file` (failing with every listener error if any listener cannot be opened, and then
 * starting none) and returns them, running; closing the scope stops every app, in parallel, and closes every
 * listener.
 */
export const start = (
  file: ConfigFile.FileConfig
): Effect.Effect<Services, ListenError, Requirements | Scope.Scope> =>
  Effect.gen(function*() {
    const sockets = yield* SocketService
    const processes = yield* ProcessService
    const outer = yield* Effect.scope
    const budget = yield* Budget.make(file.budget)
    // Every service's context: this one, and the budget they share (one Context for all, not a copy each).
    const context = Context.add(yield* Effect.context<Requirements>(), Budget.Budget, budget)
    const registry = yield* Registry
    const pool = new Map<string, Pooled>()
    const running = new Map<string, Running>()

    /**
     * Opens the listeners the configs need that are not open yet, then gives those already open the configs'
     * socket options; a failure leaves the pool and every socket as they were.
     */
    const openListeners = (configs: ReadonlyArray<ServiceConfig.ServiceConfig>) =>
      Effect.gen(function*() {
        const opened: Array<[string, Pooled]> = []
        const reused: Array<[Listener, ServiceConfig.SocketOptions]> = []
        const errors: Array<ListenError> = []
        for (const config of configs) {
          // What a killed soad left running for this service may hold its sockets.
          yield* processes.reclaim(unitOf(config))
          for (const listenerConfig of config.listeners) {
            const key = keyOf(listenerConfig)
            const pooled = pool.get(key)
            if (pooled !== undefined) {
              reused.push([pooled.listener, config.socket])
              pooled.service = config.name
            }
            if (pooled !== undefined || opened.some(([k]) => k === key)) continue
            const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
            const result = yield* sockets.open(listenerConfig, config.socket).pipe(Scope.extend(scope), Effect.either)
            if (result._tag === "Left") {
              errors.push(result.left)
              yield* Scope.close(scope, Exit.void)
            } else {
              opened.push([key, { listener: result.right, scope, service: config.name }])
            }
          }
        }
        if (errors.length > 0) {
          yield* Effect.forEach(opened, ([, pooled]) => Scope.close(pooled.scope, Exit.void), { discard: true })
          return yield* Effect.fail(errors)
        }
        for (const [listener, options] of reused) yield* applySocketOptions(sockets, listener, options)
        for (const [key, pooled] of opened) {
          pool.set(key, pooled)
          yield* event("info", "listening", `listening on ${pooled.listener.description}`, {
            listener: pooled.listener.description
          }).pipe(Effect.annotateLogs("service", pooled.service))
        }
      })

    /** The service's view of its listeners: the pool's sockets under the service's names, in its order. */
    const listenersOf = (config: ServiceConfig.ServiceConfig): ReadonlyArray<Listener> =>
      config.listeners.map((listenerConfig) => ({ ...pool.get(keyOf(listenerConfig))!.listener, name: listenerConfig.name }))

    const launch = (config: ServiceConfig.ServiceConfig) =>
      Effect.gen(function*() {
        const reason = yield* Ref.make<string | undefined>(undefined)
        // What `soad check` would refuse is said now, in its words, and the service starts failed (not at its first
        // connection: under systemd the unit would look healthy while the app can never start).
        // (Only the command: a missing cwd or socket directory may be made later, and fails at its start as ever.)
        const problems = ConfigFile.runProblems(config).filter(({ field }) => field === "command")
        for (const { field, message } of problems) {
          yield* event("error", "cannot_run", `services.${config.name}.${field}: ${message}; the service is failed until it is fixed and reloaded`, {
            field
          }).pipe(Effect.annotateLogs("service", config.name))
        }
        const cannot = problems.length === 0 ? undefined : problems.map(({ field, message }) => `${field}: ${message}`).join("; ")
        const listeners = listenersOf(config)
        // Suspended: the loop keeps the effect it restarts, which is then one closure, not the mode's whole tree.
        const serve = restarting(Effect.suspend(() => Activator.serve(config, listeners)))
        // The service's context is set around the fork, not inside the fiber: a forked fiber inherits it, and an
        // idle service's fiber then holds no frame for each (about 5 KB a service, measured with 1,000).
        const fiber = yield* Effect.forkIn(serve, outer).pipe(
          Effect.annotateLogs("service", config.name),
          Effect.provide(context),
          Effect.locally(stopReason, reason),
          Effect.locally(cannotRun, cannot)
        )
        running.set(config.name, { config, fiber, stopReason: reason })
      })

    /** Stops a service; `why` (a reload's reason) is what its app's stop says, else soad is shutting down. */
    const stop = (name: string, why?: string) =>
      Effect.gen(function*() {
        const service = running.get(name)
        if (service === undefined) return
        running.delete(name)
        if (why !== undefined) yield* Ref.set(service.stopReason, why)
        yield* Fiber.interrupt(service.fiber)
      })

    /** Closes the listeners no running service uses. */
    const closeUnused = Effect.gen(function*() {
      const used = new Set([...running.values()].flatMap((service) => service.config.listeners.map(keyOf)))
      for (const [key, pooled] of [...pool]) {
        if (used.has(key)) continue
        pool.delete(key)
        yield* Scope.close(pooled.scope, Exit.void)
        yield* event("info", "closed", `closed ${pooled.listener.description}`, { listener: pooled.listener.description }).pipe(
          Effect.annotateLogs("service", pooled.service)
        )
      }
    })

    yield* openListeners(file.services).pipe(Effect.mapError((errors) => combine(errors)))
    for (const config of file.services) yield* launch(config)
    yield* Effect.addFinalizer(() =>
      Effect.forEach([...running.keys()], (name) => stop(name), { concurrency: "unbounded", discard: true })
    )

    /**
     * Applies a new config. Every listener a changed or added service needs is opened before anything is
     * stopped: a changed service whose new listeners cannot be opened keeps running as it was (its app and its
     * listeners untouched), an added one is not started, and the log says which and why.
     */
    const apply = (next: ConfigFile.FileConfig) =>
      Effect.gen(function*() {
        yield* budget.configure(next.budget)
        const wanted = new Map(next.services.map((config) => [config.name, config]))
        const removed = [...running.keys()].filter((name) => !wanted.has(name))
        const differing = next.services.filter((config) => {
          const current = running.get(config.name)
          return current !== undefined && !ServiceConfig.equivalent(current.config, config)
        })
        // What the running app does not see (how long it may idle, how it is stopped, the backoff) is applied in
        // place: its app keeps running; the rest restarts the service.
        const handles = new Map<string, Handle>(
          (yield* registry.services).map((handle) => [handle.name, handle] as const)
        )
        const updated: Array<{ readonly config: ServiceConfig.ServiceConfig; readonly keys: ReadonlyArray<string> }> = []
        for (const config of differing) {
          const keys = changedKeys(running.get(config.name)!.config, config)
          const handle = handles.get(config.name)
          if (handle?.update === undefined || !keys.every((key) => inPlace.has(key))) continue
          yield* handle.update(config)
          running.set(config.name, { ...running.get(config.name)!, config })
          updated.push({ config, keys })
        }
        const changed = differing.filter((config) => !updated.some((u) => u.config === config))
        const added = next.services.filter((config) => !running.has(config.name))
        const isChanged = (config: ServiceConfig.ServiceConfig) => running.has(config.name)
        const ready: Array<ServiceConfig.ServiceConfig> = []
        const notApplied: Array<{ readonly config: ServiceConfig.ServiceConfig; readonly reason: string }> = []
        for (const config of [...changed, ...added]) {
          const opened = yield* Effect.either(openListeners([config]))
          if (opened._tag === "Right") {
            ready.push(config)
            continue
          }
          const reason = opened.left.map((error) => `listener ${error.message}`).join("; ")
          notApplied.push({ config, reason })
          yield* event(
            "error",
            "listen_failed",
            isChanged(config)
              ? `cannot apply the new config of ${config.name}, it keeps running as it was: ${reason}`
              : `cannot start ${config.name}: ${reason}`,
            { service: config.name, listener: opened.left.map((error) => error.address).join(", ") }
          )
        }
        // A service kept as it was keeps its listeners: one that would take one of them waits for a later reload.
        for (let blocked = true; blocked;) {
          blocked = false
          const held = new Map(
            notApplied.filter(({ config }) => isChanged(config)).flatMap(({ config }) =>
              running.get(config.name)!.config.listeners.map((listener) => [keyOf(listener), config.name] as const)
            )
          )
          for (const config of [...ready]) {
            const taken = config.listeners.map(keyOf).find((key) => held.has(key))
            if (taken === undefined) continue
            ready.splice(ready.indexOf(config), 1)
            const reason = `listener ${taken} is still used by ${held.get(taken)}, which was kept as it was`
            notApplied.push({ config, reason })
            yield* event("error", "listen_failed", `cannot ${isChanged(config) ? "apply the new config of" : "start"} ${config.name}: ${reason}`, {
              service: config.name,
              listener: taken
            })
            blocked = true
          }
        }
        const restarted = ready.filter(isChanged)
        const started = ready.filter((config) => !isChanged(config))
        const kept = notApplied.filter(({ config }) => isChanged(config))
        const failed = notApplied.filter(({ config }) => !isChanged(config))
        const changes = new Map(restarted.map((config) => [config.name, changedKeys(running.get(config.name)!.config, config)]))
        const changedText = (name: string) => `${changes.get(name)!.join(", ")} changed`
        // Stop (in parallel), so a listener can move between services; unchanged addresses stay open.
        yield* Effect.forEach(
          [
            ...removed.map((name) => [name, "for the reload (removed from the config)"] as const),
            ...restarted.map((config) => [config.name, `for the reload (${changedText(config.name)})`] as const)
          ],
          ([name, why]) => stop(name, why),
          { concurrency: "unbounded", discard: true }
        )
        for (const config of ready) yield* launch(config)
        yield* closeUnused
        const unchangedNames = next.services.filter((config) => !differing.includes(config) && !added.includes(config))
          .map((config) => config.name)
        // A failed service that the reload leaves as it is starts over (a reload is what an operator does once the
        // cause is fixed).
        const reset: Array<string> = []
        const leftAlone = new Set(unchangedNames)
        for (const handle of yield* registry.services) {
          if (!leftAlone.has(handle.name) || handle.reset === undefined) continue
          if (handle.failed !== undefined && !(yield* handle.failed)) continue
          // One that still cannot run stays failed.
          const config = wanted.get(handle.name)
          if (config !== undefined && ConfigFile.runProblems(config).some(({ field }) => field === "command")) continue
          if (yield* handle.reset) reset.push(handle.name)
        }
        const unchanged = next.services.length - changed.length - added.length
        // What it did, service by service: "blog restarted (command changed), api added, old removed, shop unchanged";
        // beyond 10 of a kind, counted ("300 restarted (listen changed)"): each error has its own line above.
        const said = [
          ...listed(restarted.map((config) => [config.name, `restarted (${changedText(config.name)})`])),
          ...listed(updated.map(({ config, keys }) => [config.name, `updated (${keys.join(", ")} changed)`])),
          ...listed(started.map((config) => [config.name, "added"])),
          ...listed(removed.map((name) => [name, "removed"])),
          ...listed(kept.map(({ config, reason }) => [config.name, `kept as it was (${reason})`]), "kept as they were (see above)"),
          ...listed(failed.map(({ config, reason }) => [config.name, `not started (${reason})`]), "not started (see above)"),
          ...listed(reset.map((name) => [name, "reset (it was failed)"])),
          ...listed(unchangedNames.filter((name) => !reset.includes(name)).map((name) => [name, "unchanged"]))
        ]
        const summary = `reloaded ${next.path}: ${said.length === 0 ? "nothing to do" : said.join(", ")}`
        yield* event(
          notApplied.length === 0 ? "info" : "warn",
          "reloaded",
          summary,
          {
            added: started.length,
            removed: removed.length,
            restarted: restarted.length,
            updated: updated.length,
            unchanged,
            kept: kept.length,
            notStarted: failed.length
          }
        )
        return { summary, complete: notApplied.length === 0 }
      })

    return { apply }
  })

/**
 * One service's defect never takes the others down: it is logged, and the service starts again a second later.
 * A loop by hand, not Effect.retry with a Schedule: that keeps a schedule driver on every idle service's fiber.
 */
const restarting = <R>(serve: Effect.Effect<never, never, R>): Effect.Effect<never, never, R> =>
  Effect.catchAllCause(serve, (cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.failCause(cause)
      : event("error", "internal_error", `internal error, restarting the service: ${Cause.pretty(cause)}`).pipe(
        Effect.zipRight(Effect.sleep(Duration.seconds(1))),
        Effect.zipRight(Effect.suspend(() => restarting(serve)))
      ))

/**
 * Services and what happened to each, for the reload's summary: each by name, or beyond 10, counted by what
 * happened ("300 restarted (listen changed)"; `many` instead of each's own words where those name one service).
 */
const listed = (entries: ReadonlyArray<readonly [string, string]>, many?: string): ReadonlyArray<string> => {
  if (entries.length <= 10) return entries.map(([name, what]) => `${name} ${what}`)
  if (many !== undefined) return [`${entries.length} ${many}`]
  const counts = new Map<string, number>()
  for (const [, what] of entries) counts.set(what, (counts.get(what) ?? 0) + 1)
  return [...counts].map(([what, n]) => `${n} ${what}`)
}

/** Several listener errors as one, every message on its own line. */
const combine = (errors: ReadonlyArray<ListenError>): ListenError =>
  errors.length === 1
    ? errors[0]!
    : new ListenError({
      address: errors.map((error) => error.address).join(", "),
      message: errors.map((error) => error.message).join("\nsoad: "),
      cause: errors,
      usage: errors.some((error) => error.usage === true)
    })

/**
 * A reused UNIX socket file takes the reloaded mode and owner, if it is still the file soad created; a file
 * swapped in at its path (a symlink to /etc/shadow, say) is left alone and reported.
 */
const applySocketOptions = (sockets: SocketService["Type"], listener: Listener, options: ServiceConfig.SocketOptions) =>
  sockets.applyOptions(listener, options).pipe(
    Effect.catchTag("SocketFileError", (error) =>
      error.replaced
        ? event("error", "socket_replaced", error.message, { listener: listener.description, path: error.path })
        : event("warn", "socket_options_failed", error.message, { listener: listener.description, path: error.path }))
  )

/** What `layer` hosts: services and, optionally, the RAM budget they share (none by default). */
export interface Hosted {
  readonly services: ReadonlyArray<ServiceConfig.ServiceConfig>
  readonly budget?: Partial<ConfigFile.BudgetConfig> | undefined
}

/**
 * Hosts every service for the lifetime of the layer, as `soad -c` does: their listeners are open when the layer is
 * built (it fails with every listener error otherwise), their apps run on demand, and releasing the layer stops
 * them all. The services register with the Registry provided (`Layer.provideMerge(Registry.layer)` keeps it, for
 * their `status`, `wake` and `sleep`); their budget is `hosted.budget`'s, whatever Budget the context holds.
 */
export const layer = (hosted: Hosted): Layer.Layer<never, ListenError, Requirements> =>
  Layer.scopedDiscard(start({
    path: "(library)",
    services: hosted.services,
    budget: {
      maxRunning: hosted.budget?.maxRunning,
      minAvailableMemory: hosted.budget?.minAvailableMemory,
      minWarm: hosted.budget?.minWarm ?? ConfigFile.defaultMinWarm
    }
  }))
