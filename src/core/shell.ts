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
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import { event } from "../Logging.js"
import * as Format from "../observe/format.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import type { Listener } from "../SocketService.js"
import * as AppRun from "./appRun.js"
import * as Backoff from "./backoff.js"
import { cannotRun, failedWith, makeTracker, now, preciseNow, register, stopReason } from "./lifecycle.js"
import type { Mode, Service, Trigger } from "./service.js"


export type { Mode, Service, Trigger } from "./service.js"

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

/** One turn of the serve loop: a reason to act; refused while failed; the backoff for a connection; the mode acts. */
const turn = <R>(service: Service, mode: Mode<R>) =>
  Effect.gen(function*() {
    const trigger = yield* mode.next
    if (trigger === undefined) return
    // On the cold path the app started at the wake: the times are counted from it.
    const started = trigger._tag === "Connection" ? trigger.started : undefined
    let pendingSince = (yield* preciseNow) - (started !== undefined && started._tag === "Right" ? started.right.sinceWake() : 0)
    const { failures, gaveUp, notBefore } = yield* service.backoff.state
    // Failed (a wake by hand resets it before it fires): what waits is refused, at once.
    if (gaveUp && trigger._tag === "Connection") return yield* mode.refuse
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
      if (!(yield* mode.stillWaiting)) return
      pendingSince = yield* preciseNow
    }
    yield* mode.act(trigger, pendingSince)
  }).pipe(Effect.scoped)

/**
 * Serves a service in a mode, forever: registers it (status, wake, sleep) if there is a Registry, then waits for
 * a reason to act and lets the mode act, again and again. Interrupting it stops what runs gracefully first.
 */
export const serve = <R, R2>(
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  makeMode: (service: Service) => Effect.Effect<Mode<R>, never, R2 | Scope.Scope>
): Effect.Effect<never, never, Exclude<R | R2, Scope.Scope>> =>
  Effect.gen(function*() {
    // Scoped, not Effect.annotateLogs around it: that would keep frames on every idle service's fiber.
    yield* Effect.annotateLogsScoped({ service: config.name })
    // The service's config as it is now: a reload may update what the running app does not see (inPlace), which
    // each use reads here (the next look, run or failure), so the app keeps running.
    let current = config
    let updated = Deferred.unsafeMake<void>(FiberId.none)
    const service: Service = {
      updated: Effect.suspend(() => Deferred.await(updated)),
      get config() {
        return current
      },
      listeners,
      tracker: yield* makeTracker(config.name),
      stopReason: (yield* FiberRef.get(stopReason)) ?? (yield* Ref.make<string | undefined>(undefined)),
      backoff: yield* Backoff.make(() => ({
        initial: current.initialBackoff,
        max: current.maxBackoff,
        limit: { burst: current.startLimitBurst, interval: current.startLimitInterval }
      }))
    }
    const mode = yield* makeMode(service)
    const update = (next: ServiceConfig.ServiceConfig) =>
      Effect.suspend(() => {
        current = next
        const done = updated
        updated = Deferred.unsafeMake<void>(FiberId.none)
        return Deferred.succeed(done, undefined)
      })
    yield* register(config, listeners, service.tracker, service.backoff, { ...mode, update })
    // An app that can never start as configured: failed at once (the others run), not at its first connection.
    const cannot = yield* FiberRef.get(cannotRun)
    if (cannot !== undefined) {
      yield* failedWith(service.tracker, cannot)
      yield* service.backoff.giveUp
    }
    return yield* Effect.forever(turn(service, mode))
  }).pipe(Effect.scoped)
