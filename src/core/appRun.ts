/**
 * One run of an app, for the modes that run one app at a time (socket hand-off, proxy): start it, wait until it
 * is ready (the mode's sign and the readiness policy, core/readiness.ts, within the start timeout), watch its
 * activity until it is idle, exits or is asked to stop, and conclude (stop, count, log, backoff), through the phases
 * of lifecycle.ts, one function per transition. What differs between the modes is their Session.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import { event } from "../Logging.js"
import * as Counters from "../observe/counters.js"
import * as Format from "../observe/format.js"
import type { AppNotify } from "../AppNotify.js"
import type { AppLogs } from "../observe/appLogs.js"
import { type App, ProcessService, SpawnError } from "../ProcessService.js"
import * as Idle from "./idle.js"
import {
  conclude,
  count,
  enter,
  failedWith,
  known,
  logFailing,
  now,
  onShutdown,
  type Outcome,
  preciseNow,
  type Run,
  setAppStatus,
  setRun,
  stopPolicy,
  updateKnown
} from "./lifecycle.js"
import * as Readiness from "./readiness.js"
import type { Service, Session, Trigger } from "./service.js"

export type { Session } from "./service.js"

/** A run that failed: its app did not start, did not come up, or crashed; `why`, for what waited for it. */
export class RunFailed extends Data.TaggedError("RunFailed")<{ readonly why: string }> {}

/** Why the run's scope closed on a failed app (what the mode held for it goes, with that reason); undefined if not. */
export const failure = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const failed = Cause.failureOption(exit.cause)
  return Option.isSome(failed) && failed.value instanceof RunFailed ? failed.value.why : undefined
}

const because = (trigger: Trigger): string =>
  trigger._tag === "Wake"
    ? "on request (soad wake)"
    : trigger.listener === undefined
    ? "on a connection"
    : `on a connection to ${trigger.listener.description}`

/** Transition: the spawn failed (idle stays idle): count it, log it, move the backoff. */
const startFailed = (service: Service, error: SpawnError) =>
  Effect.gen(function*() {
    yield* failedWith(service.tracker, `cannot start the app: ${error.message}`)
    const state = yield* service.backoff.failed
    yield* count(service.tracker, "failedStarts")
    yield* event("error", "start_failed", `cannot start the app: ${error.message}`, { code: error.code })
    yield* logFailing(state, yield* now, service.config)
    return yield* Effect.fail(new RunFailed({ why: "the app cannot start" }))
  })

/** Transition idle → starting: the app exists. */
const spawned = (service: Service, session: Session, app: App, trigger: Trigger, startedAt: number, spawnMs: number) =>
  Effect.gen(function*() {
    yield* enter(service.tracker, { _tag: "Spawned", pid: app.pid, startedAt })
    yield* updateKnown(service.tracker, (known) => ({ ...known, lastStart: { at: startedAt, coldStartMs: undefined } }))
    yield* count(service.tracker, "activations")
    const after = trigger._tag === "Wake"
      ? "on request"
      : `${Format.millis(spawnMs)} after the connection` +
        (trigger.listener === undefined ? "" : ` on ${trigger.listener.description}`)
    yield* event("info", "started", `app started (pid ${app.pid}, ${after}${session.startedNote ?? ""})`, {
      pid: app.pid,
      spawn_ms: Number(spawnMs.toFixed(3)),
      trigger: trigger._tag === "Wake" ? "wake" : "connection",
      // Started by the armed listener itself (the cold path), or by soad after the wake.
      armed: trigger._tag === "Connection" && trigger.started !== undefined,
      ...session.startedFields
    })
  })

/** Transition starting → running: the app is ready. */
const ready = (service: Service, session: Session, app: App, trigger: Trigger, pendingSince: number) =>
  Effect.gen(function*() {
    yield* enter(service.tracker, { _tag: "Ready" })
    const coldStart = (yield* preciseNow) - pendingSince
    yield* updateKnown(service.tracker, (known) =>
      known.lastStart === undefined ? known : { ...known, lastStart: { ...known.lastStart, coldStartMs: coldStart } })
    if (trigger._tag === "Connection") {
      yield* Metric.update(Counters.forService(Counters.coldStart, service.config.name), coldStart / 1000)
    }
    const since = trigger._tag === "Wake" ? "the request (soad wake)" : "the connection"
    yield* event("info", "ready", `the app accepts ${session.accepts} (${Format.millis(coldStart)} after ${since})`, {
      pid: app.pid,
      cold_start_ms: Number(coldStart.toFixed(3))
    })
    yield* session.onReady
  })

/** Looks until idle; a reload that changes the settings in place (-t) makes it look again at once, by them. */
const untilIdle = (service: Service, look: Effect.Effect<Idle.Decision>): Effect.Effect<number> =>
  Effect.flatMap(
    Effect.raceFirst(Effect.map(Idle.untilIdle(look), Option.some), Effect.as(service.updated, Option.none<number>())),
    Option.match({ onNone: () => untilIdle(service, look), onSome: Effect.succeed })
  )

/** Asks the service's budget for room (an unlimited one gives it at once); `stop` is how it evicts this run. */
const reserve = (service: Service, lastActivity: Effect.Effect<number>, stop: Deferred.Deferred<string>, done: Deferred.Deferred<void>) =>
  service.budget.reserve(service.config.name, {
    lastActivity,
    evict: (reason) => Deferred.succeed(stop, reason).pipe(Effect.zipRight(Deferred.await(done)))
  })

/**
 * One run of the app, in the current scope: start it, wait until it is ready, watch it until it is idle, exits or
 * is asked to stop, and conclude. Fails with RunFailed when the app never came up or crashed. Interrupting it
 * stops the app gracefully.
 */
export const run = (
  service: Service,
  session: Session,
  activity: Ref.Ref<number>,
  trigger: Trigger,
  pendingSince: number
): Effect.Effect<void, RunFailed, ProcessService | AppLogs | AppNotify | Scope.Scope> =>
  Effect.gen(function*() {
    const { backoff, config, tracker } = service
    const processes = yield* ProcessService
    // The budget or `soad sleep` may ask the app to stop; `done` completes once it has.
    const stop = yield* Deferred.make<string>()
    const done = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() =>
      Deferred.succeed(done, undefined).pipe(
        Effect.zipRight(setRun(tracker, undefined)),
        Effect.zipRight(setAppStatus(tracker, undefined)),
        Effect.zipRight(enter(tracker, { _tag: "Exited" }))
      )
    )
    yield* setRun(tracker, { stop, done, lastActivity: session.lastActivity })
    yield* reserve(service, session.lastActivity, stop, done)
    const started = trigger._tag === "Connection" ? trigger.started : undefined
    yield* event("debug", "starting", `starting ${config.command.join(" ")} ${because(trigger)}`)
    const readiness = yield* Effect.either(Readiness.prepare(config, tracker))
    if (Either.isLeft(readiness)) {
      const { code, message } = readiness.left
      return yield* startFailed(service, new SpawnError({ command: config.command[0], code, message }))
    }
    const policy = readiness.right
    const request = { ...session.request, env: { ...session.request.env, ...policy.env } }
    const result = started !== undefined
      ? Either.map(started, ({ app }) => app)
      : yield* Effect.either(processes.spawn(request, stopPolicy(config)))
    if (Either.isLeft(result)) return yield* startFailed(service, result.left)
    const app = result.right
    const startedAt = yield* now
    yield* Ref.set(activity, startedAt)
    const watch = yield* policy.watch(app, startedAt)
    yield* spawned(
      service,
      session,
      app,
      trigger,
      startedAt,
      started !== undefined && Either.isRight(started) ? started.right.spawnMs : (yield* preciseNow) - pendingSince
    )
    const theRun: Run = { config, tracker, backoff, app, startedAt, onStop: session.onStop, stopReason: service.stopReason }
    const exited = Effect.map(app.exit, (status): Outcome => ({ _tag: "Exited", status }))
    const watching = Effect.gen(function*() {
      const notReady = yield* Effect.raceFirst(
        exited,
        Effect.raceFirst(
          Effect.as(Effect.zipRight(session.awaitReady, watch.ready), undefined),
          Effect.as(watch.deadline, { _tag: "NotReady" } satisfies Outcome)
        )
      )
      if (notReady !== undefined) return notReady
      yield* ready(service, session, app, trigger, pendingSince)
      return yield* Effect.raceFirst(
        exited,
        Effect.map(untilIdle(service, session.look), (idleFor): Outcome => ({ _tag: "Idle", idleFor }))
      )
    })
    const outcome = yield* Effect.raceFirst(
      watching,
      Effect.map(Deferred.await(stop), (reason): Outcome => ({ _tag: "Stopped", reason }))
    ).pipe(onShutdown(theRun))
    // A failed start: look, before the app is stopped, at what may explain it.
    const failedStart = (outcome._tag === "NotReady" || outcome._tag === "Exited") && (yield* known(tracker)).phase.phase === "starting"
    const explain = failedStart && session.diagnose !== undefined ? yield* session.diagnose(app) : Effect.void
    const notReady = (yield* watch.notReady) ?? session.notReady
    const concluded = yield* conclude(theRun, outcome, notReady)
    yield* explain
    if (concluded.failed !== undefined) return yield* Effect.fail(new RunFailed({ why: concluded.failed }))
  })
