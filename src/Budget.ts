/**
 * The RAM budget for many apps on one small machine: at most `max-running` apps at once, and/or at least
 * `min-available-memory` of MemAvailable left. When starting an app would break it, soad first stops the least
 * recently active running app that has been up at least `min-warm`, then starts the new one.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Monotonic from "./core/monotonic.js"
import type { BudgetConfig } from "./ConfigFile.js"
import * as Format from "./observe/format.js"
import { event } from "./Logging.js"

/** A running app, as the budget sees it. */
export interface Entry {
  readonly service: string
  /** Clock millis when it was admitted. */
  readonly startedAt: number
  /** Clock millis of its latest activity. */
  readonly lastActivity: Effect.Effect<number>
  /** Asks its Activator to stop it to make room; completes once it has stopped. */
  readonly evict: (reason: string) => Effect.Effect<void>
}

/** Admission of apps under the budget. */
export class Budget extends Context.Tag("soad/Budget")<Budget, {
  /**
   * Does admission decide anything (every budget `make` gives, whose limits a reload may change)? false for
   * `unlimited`: `reserve` never waits nor stops another app, so an idle hand-off service may be armed (its app
   * started by the connection itself, with no admission in between).
   */
  readonly limited: boolean
  /**
   * Waits until `service` may start an app, stopping others to make room; the app counts against the budget
   * until the scope closes.
   */
  readonly reserve: (
    service: string,
    entry: Omit<Entry, "service" | "startedAt">
  ) => Effect.Effect<void, never, Scope.Scope>
  /** New limits (a reloaded config file); they apply to the next admission. */
  readonly configure: (config: BudgetConfig) => Effect.Effect<void>
}>() {}

/** MemAvailable in bytes, from /proc/meminfo; undefined where it cannot be read. */
const memAvailable: Effect.Effect<number | undefined> = Effect.sync(() => {
  try {
    const kb = /^MemAvailable:\s+(\d+) kB/m.exec(Fs.readFileSync("/proc/meminfo", "utf8"))?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
})

/** How long admission waits before looking again when no app may be stopped yet. */
const recheck = Duration.seconds(1)

/** A budget over the given limits; `memory` reads MemAvailable (tests give a fake). */
export const make = (
  initial: BudgetConfig,
  memory: Effect.Effect<number | undefined> = memAvailable
): Effect.Effect<Budget["Type"]> =>
  Effect.gen(function*() {
    const lock = yield* Effect.makeSemaphore(1)
    const running = new Map<string, Entry & { evicting: boolean }>()
    let config = initial

    const pressure = (service: string) =>
      Effect.gen(function*() {
        const others = [...running.values()].filter((entry) => entry.service !== service)
        if (config.maxRunning !== undefined && others.length >= config.maxRunning) {
          return { reason: `max-running is ${config.maxRunning}`, strict: true }
        }
        if (config.minAvailableMemory !== undefined) {
          const available = yield* memory
          if (available !== undefined && available < config.minAvailableMemory) {
            return {
              reason: `${Math.round(available / 1e6)} MB available, min-available-memory is ${
                Math.round(config.minAvailableMemory / 1e6)
              } MB`,
              strict: false
            }
          }
        }
        return undefined
      })

    const admit = (service: string) =>
      Effect.gen(function*() {
        let waitingLogged = false
        for (;;) {
          const why = yield* pressure(service)
          if (why === undefined) return
          const now = yield* Monotonic.now
          const minWarm = Duration.toMillis(config.minWarm)
          const candidates = [...running.values()].filter((entry) =>
            entry.service !== service && !entry.evicting && now - entry.startedAt >= minWarm
          )
          if (candidates.length === 0) {
            if (!why.strict) {
              yield* event("warn", "over_budget", `starting ${service} although ${why.reason}: no running app may be stopped`)
              return
            }
            const soonest = Math.min(...[...running.values()].map((entry) => entry.startedAt + minWarm))
            if (!waitingLogged) {
              yield* event(
                "warn",
                "waiting_for_room",
                `${service} waits: ${why.reason} and no running app has been up ${Format.seconds(minWarm)} yet` +
                  (Number.isFinite(soonest) ? ` (the first will be in ${Format.seconds(Math.max(0, soonest - now))})` : "")
              )
              waitingLogged = true
            }
            const wait = Number.isFinite(soonest) ? Math.max(1, Math.min(soonest - now, Duration.toMillis(recheck))) : 1000
            yield* Effect.sleep(Duration.millis(wait))
            continue
          }
          // The least recently active one goes.
          let victim = candidates[0]!
          let victimActivity = yield* victim.lastActivity
          for (const entry of candidates.slice(1)) {
            const activity = yield* entry.lastActivity
            if (activity < victimActivity) {
              victim = entry
              victimActivity = activity
            }
          }
          victim.evicting = true
          const reason = `to make room for ${service}: ${why.reason}; it was the least recently active, idle for ${
            Format.seconds(now - victimActivity)
          }`
          yield* event("debug", "evicting", `stopping ${victim.service} ${reason}`, { victim: victim.service })
          yield* victim.evict(reason)
        }
      })

    // The wait for room stays interruptible (only the booking is an acquire): a service that waits for room when
    // soad shuts down, or when its service is stopped, stops waiting, and its app never starts.
    const reserve = (service: string, entry: Omit<Entry, "service" | "startedAt">) =>
      lock.withPermits(1)(
        Effect.zipRight(
          admit(service),
          Effect.acquireRelease(
            Effect.map(Monotonic.now, (startedAt) => {
              running.set(service, { ...entry, service, startedAt, evicting: false })
            }),
            () => Effect.sync(() => running.delete(service))
          )
        )
      )

    return {
      limited: true,
      reserve,
      configure: (next: BudgetConfig) => Effect.sync(() => (config = next))
    }
  })

/** A budget over these limits. */
export const layer = (config: BudgetConfig): Layer.Layer<Budget> => Layer.effect(Budget, make(config))

/** No budget: every app starts when asked, none is stopped to make room (one service, or a library's own). */
export const unlimited: Budget["Type"] = {
  limited: false,
  reserve: () => Effect.void,
  configure: () => Effect.void
}

/** The unlimited budget as a layer: what `SoadContext` provides where no `Services` sets a budget. */
export const layerUnlimited: Layer.Layer<Budget> = Layer.succeed(Budget, unlimited)
