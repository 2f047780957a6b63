/**
 * What the service shell (shell.ts), one run of an app (appRun.ts) and the modes (modes/) say to each other: why
 * the shell wakes, the service being served, a mode's hooks, and what a mode gives one run of its app. Types only, so
 * that each of those modules imports this one and none of them the other's.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { Budget } from "../Budget.js"
import type { Fields } from "../Logging.js"
import type { App, SpawnError, SpawnRequest, Started } from "../ProcessService.js"
import type { Status } from "../Registry.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import type { Listener } from "../SocketService.js"
import type * as Backoff from "./backoff.js"
import type * as Idle from "./idle.js"
import type { Tracker } from "./lifecycle.js"

/**
 * Why the shell wakes: a connection (on this listener, if known; `started`: on the cold path, the app the armed
 * listener already started, or why that failed), or `soad wake`.
 */
export type Trigger =
  | {
    readonly _tag: "Connection"
    readonly listener?: Listener | undefined
    readonly started?: Either.Either<Started, SpawnError> | undefined
  }
  | { readonly _tag: "Wake" }

/**
 * A service being served: its config, what it knows of itself, its backoff, the budget its apps start under, why
 * its apps are stopped.
 */
export interface Service {
  readonly config: ServiceConfig.ServiceConfig
  readonly listeners: ReadonlyArray<Listener>
  readonly tracker: Tracker
  readonly backoff: Backoff.Backoff
  /** Admission of its apps (Services: the RAM budget they share; one service alone: unlimited). */
  readonly budget: Budget["Type"]
  /**
   * Why the service's apps are stopped when it is interrupted (a reload's reason, `soad sleep`); unset, soad is
   * shutting down. The one stop channel of every mode: the run's own stop request (core/appRun.ts) says it too.
   */
  readonly stopReason: Ref.Ref<string | undefined>
  /** Completes at the next reload that updates `config` in place (what waits on the old settings looks again). */
  readonly updated: Effect.Effect<void>
}

/**
 * What a mode plugs into the shell, the hooks the serve loop calls: what it waits for, how it acts on it, how it
 * refuses while the service is failed (the config's choice of mode is `ServiceConfig.Mode`; this is what it does).
 */
export interface ModeHooks<R> {
  /**
   * The next reason to act: a connection or a wake; undefined if there is none after all (the connection went away
   * meanwhile, or a listener woke the wait only because an app had shut it down). An app it started (the cold
   * path) lives in the turn's scope, which `scope` makes when first run. (An argument, not a requirement:
   * providing a scope would keep frames, and the scope itself, on every idle service's fiber while it waits.)
   */
  readonly next: (scope: Effect.Effect<Scope.Scope>) => Effect.Effect<Trigger | undefined, never, R>
  /** Does a connection still wait (looked at after a backoff delay)? */
  readonly stillWaiting: Effect.Effect<boolean, never, R>
  /** Acts on a trigger, in the turn's scope: one run of the app (`runs`), or an instance for a connection. */
  readonly act: (trigger: Trigger, pendingSince: number) => Effect.Effect<void, never, R | Scope.Scope>
  /** The service is failed (its start limit reached): what waits is refused now (closed; proxy: HTTP gets a 503). */
  readonly refuse: Effect.Effect<void, never, R>
  /** Extra figures for `soad status` (proxy: open connections, bytes relayed; accept: instances). */
  readonly status?: Effect.Effect<Partial<Status>>
  /** `soad wake` and `soad sleep`, where the mode answers them itself (accept mode: its instances). */
  readonly wake?: Effect.Effect<string>
  readonly sleep?: Effect.Effect<string>
}

/**
 * What a mode gives one run of its app, set up in the run's scope. What the mode holds for the run (proxy: the
 * connections waiting for it) it gives back with the scope's finalizers: the scope closes with `RunFailed` when the
 * app never came up or crashed, and successfully otherwise.
 */
export interface Session {
  readonly request: SpawnRequest
  /** The latest activity (Clock ms), for the budget and `soad status`. */
  readonly lastActivity: Effect.Effect<number>
  /** Said after "app started (pid N, …" (proxy: the upstream address), and the started event's extra fields. */
  readonly startedNote?: string
  readonly startedFields?: Fields
  /** What the app accepts once ready, for the ready event ("connections", "on 127.0.0.1:8000"). */
  readonly accepts: string
  /** What a start that never became ready did not do, for the not_ready event. */
  readonly notReady: string
  /** The mode's sign that the app is ready; bounded by the start timeout. */
  readonly awaitReady: Effect.Effect<void>
  /** The app is ready (proxy: the held connections go to it). */
  readonly onReady: Effect.Effect<void>
  /** One look at the app's activity: the idle decision (core/idle.ts). */
  readonly look: Effect.Effect<Idle.Decision>
  /** As soon as the app is asked to stop (proxy: new connections are held, not relayed to an app that stops). */
  readonly onStop?: Effect.Effect<void>
  /** Looked at before a failed start's app is stopped; the effect it returns runs once the run has concluded. */
  readonly diagnose?: (app: App) => Effect.Effect<Effect.Effect<void>>
}
