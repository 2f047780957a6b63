/**
 * The service shell: what every mode of serving a service shares, written once. It keeps what the service knows
 * of itself (lifecycle.ts's Tracker), its backoff and start limit (backoff.ts), its registration for `soad status`,
 * `wake` and `sleep`, and its serve loop: wait for a reason to act (the mode's `next`: a connection or a wake),
 * refuse it while the service is failed, let the backoff pass, and let the mode act on it. A mode (modes/: socket
 * hand-off, proxy, a process per connection) says only what differs: what it waits for, how it acts (one run of
 * the app, core/appRun.ts, or an instance per connection), and how it refuses.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Deferred from "effect/Deferred"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import { Budget } from "../Budget.js"
import { event } from "../Logging.js"
import type { Registry } from "../Registry.js"
import * as Format from "../observe/format.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import type { Listener } from "../SocketService.js"
import * as AppRun from "./appRun.js"
import * as Backoff from "./backoff.js"
import { cannotRun, failedWith, makeTracker, now, preciseNow, register, stopReason, type Tracker } from "./lifecycle.js"
import type { ModeHooks, Service, Trigger } from "./service.js"


export type { ModeHooks, Service, Trigger } from "./service.js"

/**
 * `act` for the modes that run one app at a time: each trigger is one run of the app (core/appRun.ts) with the
 * mode's session; `activity` is the activity soad itself saw (the start), which the session reads and moves. The
 * session's scope closes with the run's failure, if it failed: what it held is given back with the reason.
 */
export const runs = <R>(
  service: Service,
  session: (trigger: Trigger, activity: Ref.Ref<number>) => Effect.Effect<AppRun.Session, never, R | Scope.Scope>
) =>
(trigger: Trigger, pendingSince: number) =>
  Effect.scoped(Effect.gen(function*() {
    const activity = yield* Ref.make(yield* now)
    yield* AppRun.run(service, yield* session(trigger, activity), activity, trigger, pendingSince)
  })).pipe(Effect.catchTag("RunFailed", () => Effect.void))

/**
 * One turn of the serve loop: a reason to act; refused while failed; the backoff for a connection; the mode acts.
 * The turn's scope is made when first asked for (by the cold path's start, or to act), as a child of the
 * service's: closed when the turn ends, or with the service's when it is interrupted (it was added last, so it
 * closes first). A service waiting for a connection then holds no scope of its own, and waits one flatMap deep,
 * not inside an Effect.scoped (seven frames, a scope's context and a copy of the fiber's FiberRefs).
 */
const turn = <R>(service: Service, hooks: ModeHooks<R>, serviceScope: Scope.Scope) =>
  Effect.suspend(() => {
    let made: Scope.CloseableScope | undefined
    const scope = Effect.suspend(() =>
      made !== undefined
        ? Effect.succeed(made)
        : Effect.tap(Scope.fork(serviceScope, ExecutionStrategy.sequential), (forked) => {
          made = forked
        })
    )
    const close = Effect.suspend(() => made === undefined ? Effect.void : Scope.close(made, Exit.void))
    return Effect.flatMap(hooks.next(scope), (trigger) =>
      trigger === undefined
        ? close
        : Effect.zipRight(Effect.flatMap(scope, (turnScope) => Scope.extend(actOn(service, hooks, trigger), turnScope)), close))
  })

/** What a turn does with a trigger: refused while failed; the backoff for a connection; the mode acts. */
const actOn = <R>(service: Service, hooks: ModeHooks<R>, trigger: Trigger) =>
  Effect.gen(function*() {
    // On the cold path the app started at the wake: the times are counted from it.
    const started = trigger._tag === "Connection" ? trigger.started : undefined
    let pendingSince = (yield* preciseNow) - (started !== undefined && started._tag === "Right" ? started.right.sinceWake() : 0)
    const { failures, gaveUp, notBefore } = yield* service.backoff.state
    // Failed (a wake by hand resets it before it fires): what waits is refused, at once.
    if (gaveUp && trigger._tag === "Connection") return yield* hooks.refuse
    const t = yield* now
    // A wake by hand does not wait for the backoff.
    if (trigger._tag === "Connection" && started === undefined && notBefore > t) {
      yield* event(
        "debug",
        "waiting",
        `a connection waits${trigger.listener === undefined ? "" : ` on ${trigger.listener.description}`}; next try in ${
          Format.seconds(notBefore - t)
        } (${failures} failure${failures === 1 ? "" : "s"} in a row)`
      )
      yield* Effect.sleep(Duration.millis(notBefore - t))
      // The connection may have given up meanwhile: act only for one still waiting.
      if (!(yield* hooks.stillWaiting)) return
      pendingSince = yield* preciseNow
    }
    yield* hooks.act(trigger, pendingSince)
  })

/**
 * Serves a service in a mode, forever: registers it with the Registry (status, wake, sleep), its apps admitted by
 * the Budget, then waits for a reason to act and lets the mode act, again and again. Interrupting it stops what runs gracefully first.
 */
export const serve = <R, R2>(
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  makeHooks: (service: Service) => Effect.Effect<ModeHooks<R>, never, R2 | Scope.Scope>
): Effect.Effect<never, never, R | Exclude<R2, Scope.Scope> | Budget | Registry> =>
  // The service's scope is made by hand and provided only while the service is set up: the serve loop runs outside
  // it (Effect.scoped around it would keep seven frames on every idle service's fiber), and closes it when it ends.
  // (Suspended: the onExit frame keeps the effect it runs, and the setup's would hold a Context of its own.)
  Effect.flatMap(Scope.make(), (scope) =>
    Effect.onExit(
      Effect.suspend(() =>
        Effect.flatMap(
          Scope.extend(setUp(config, listeners, makeHooks), scope),
          ([service, hooks]) => Effect.forever(turn(service, hooks, scope))
        )
      ),
      (exit) => Scope.close(scope, exit)
    ))

/** A service's config as it is now, and what completes at its next update in place. */
interface Settings {
  current: ServiceConfig.ServiceConfig
  updated: Deferred.Deferred<void>
}

/**
 * A service being served. `config` and `updated` are getters on the class (shared by every instance): getters
 * in an object literal give each object a dictionary of its properties (448 bytes with 1,000 services).
 */
class Served implements Service {
  constructor(
    private readonly settings: Settings,
    readonly listeners: ReadonlyArray<Listener>,
    readonly tracker: Tracker,
    readonly stopReason: Ref.Ref<string | undefined>,
    readonly backoff: Backoff.Backoff,
    readonly budget: Budget["Type"]
  ) {}
  get config(): ServiceConfig.ServiceConfig {
    return this.settings.current
  }
  get updated(): Effect.Effect<void> {
    const settings = this.settings
    return Effect.suspend(() => Deferred.await(settings.updated))
  }
}

/** A service's shell: what it knows of itself, its mode's hooks, its registration; in the service's scope. */
const setUp = <R, R2>(
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  makeHooks: (service: Service) => Effect.Effect<ModeHooks<R>, never, R2 | Scope.Scope>
) =>
  Effect.gen(function*() {
    // Scoped, not Effect.annotateLogs around it: that would keep frames on every idle service's fiber. Services
    // annotates the fiber when it forks it: then there is nothing to add (nor a finalizer to keep).
    const annotations = yield* Effect.logAnnotations
    if (Option.getOrUndefined(HashMap.get(annotations, "service")) !== config.name) {
      yield* Effect.annotateLogsScoped({ service: config.name })
    }
    // The service's config as it is now: a reload may update what the running app does not see (inPlace), which
    // each use reads here (the next look, run or failure), so the app keeps running.
    const settings: Settings = { current: config, updated: Deferred.unsafeMake<void>(FiberId.none) }
    const service = new Served(
      settings,
      listeners,
      yield* makeTracker(config.name),
      (yield* FiberRef.get(stopReason)) ?? (yield* Ref.make<string | undefined>(undefined)),
      yield* Backoff.make(() => ({
        initial: settings.current.initialBackoff,
        max: settings.current.maxBackoff,
        limit: { burst: settings.current.startLimitBurst, interval: settings.current.startLimitInterval }
      })),
      yield* Budget
    )
    const hooks = yield* makeHooks(service)
    const update = (next: ServiceConfig.ServiceConfig) =>
      Effect.suspend(() => {
        settings.current = next
        const done = settings.updated
        settings.updated = Deferred.unsafeMake<void>(FiberId.none)
        return Deferred.succeed(done, undefined)
      })
    // Not `{ ...hooks }`: a spread would make (and keep) what the mode's getters make only when asked.
    yield* register(config, listeners, service.tracker, service.backoff, { status: hooks.status, wake: hooks.wake, sleep: hooks.sleep, update })
    // An app that can never start as configured: failed at once (the others run), not at its first connection.
    const cannot = yield* FiberRef.get(cannotRun)
    if (cannot !== undefined) {
      yield* failedWith(service.tracker, cannot)
      yield* service.backoff.giveUp
    }
    return [service, hooks] as const
  })
