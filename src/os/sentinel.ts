/**
 * Exact counting for an app that runs as another user, through a sentinel process of that user
 * (src/native/helper/sentinel.c). The counting signal is set on the file description the app shares; when soad
 * owned it, the app could change the signal to SIGKILL and connect to itself, and the kernel (which checks the
 * credentials of whoever called F_SETOWN) would kill root soad. With the sentinel as owner, that signal reaches only
 * the sentinel; soad sees it die and counts by readability for the rest of the run.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type * as ServiceConfig from "../ServiceConfig.js"
import { event } from "../Logging.js"
import type { Arrivals, Listener } from "../SocketService.js"
import { helperPath, type Native } from "./native.js"

/**
 * What a native call that threw says: its message names the call and the errno (`fcntl(F_DUPFD): Too many open
 * files`). Every failure here is said; `Effect.try` without a `catch` would say only "An unknown error occurred".
 */
const said = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** Does an app run as this user need a sentinel (it is not soad's own user, who could signal soad anyway)? */
export const needed = (runAs: ServiceConfig.RunAs | undefined): runAs is ServiceConfig.RunAs =>
  runAs !== undefined && runAs.uid !== process.geteuid?.()

/**
 * Counts arrivals on the listeners through a sentinel run as `runAs`, until the scope closes; falls back to
 * `readability` (with a warning) where the sentinel cannot run or once it has died.
 */
export const arrivals = (
  n: Native,
  listeners: ReadonlyArray<Listener>,
  runAs: ServiceConfig.RunAs,
  readability: (listeners: ReadonlyArray<Listener>) => Effect.Effect<Arrivals, never, Scope.Scope>
): Effect.Effect<Arrivals, never, Scope.Scope> =>
  Effect.gen(function*() {
    const fallback = (why: string) =>
      event("warn", "counting_fallback", `${why}: this run's activity is seen through readability`).pipe(
        Effect.zipRight(readability(listeners))
      )
    const helper = helperPath("soad-sentinel")
    if (helper === undefined) return yield* fallback("the counting sentinel (soad-sentinel) is not built for this platform")
    const shared = yield* Effect.either(Effect.try({ try: () => n.sentinelMemory(listeners.length), catch: said }))
    if (shared._tag === "Left") return yield* fallback(`no shared memory for the counting sentinel (${shared.left})`)
    const memory = shared.right
    if (memory === null) return yield* fallback("no shared memory for the counting sentinel (no memfd on this platform)")
    const exited = yield* Deferred.make<{ readonly code: number | null; readonly signal: number | null }>()
    const spawned = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          n.spawn(
            helper,
            ["soad-sentinel", String(listeners.length)],
            [],
            [...listeners.map((listener) => listener.fd), memory.fd],
            { uid: runAs.uid, gid: runAs.gid, groups: runAs.groups, listenPid: false, pdeathsig: true },
            (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal }))
          ),
        catch: said
      }).pipe(Effect.either),
      (pid) =>
        Effect.sync(() => {
          if (pid._tag === "Right") {
            try {
              process.kill(pid.right, "SIGKILL")
            } catch {
              // already gone
            }
          }
          for (const listener of listeners) {
            try {
              n.countStop(listener.fd)
            } catch {
              // the listener is closed already
            }
          }
          n.sentinelFree(memory.id)
        })
    )
    n.close(memory.fd) // the sentinel has its copy
    if (spawned._tag === "Left") {
      return yield* fallback(`the counting sentinel cannot start (${spawned.left})`)
    }
    const pid = spawned.right
    const degraded = yield* Ref.make(Option.none<Arrivals>())
    yield* Deferred.await(exited).pipe(
      Effect.flatMap((status) =>
        event(
          "warn",
          "counting_lost",
          `the counting sentinel (pid ${pid}) ended (${
            status.signal !== null ? `signal ${status.signal}` : `code ${status.code}`
          }): the app may have turned its socket's signal against it; this run's activity is seen through readability`,
          { sentinel_pid: pid }
        )
      ),
      Effect.zipRight(readability(listeners)),
      Effect.flatMap((fallbackArrivals) => Ref.set(degraded, Option.some(fallbackArrivals))),
      Effect.forkScoped
    )

    const latest = Effect.gen(function*() {
      const fallbackArrivals = yield* Ref.get(degraded)
      if (Option.isSome(fallbackArrivals)) return yield* fallbackArrivals.value.latest
      const now = Number((yield* Clock.currentTimeNanos) / 1_000_000n)
      const read = n.sentinelRead(memory.id)
      if (read.armed === 0) return { at: undefined, rearmed: true } // not counting yet: nothing can be said
      // The app shares the settings: it may have moved the owner away or changed the signal. Ask the sentinel
      // (never soad, whose credentials would make the signal dangerous again) to take them back.
      const disturbed = listeners.some((listener) => {
        const owner = n.countOwner(listener.fd)
        return owner.owner !== pid || owner.signal !== read.signal || !owner.async
      })
      if (disturbed) {
        try {
          process.kill(pid, "SIGHUP")
        } catch {
          // it has just died: the fiber above takes over
        }
        return { at: undefined, rearmed: true }
      }
      let at: number | undefined
      for (const ago of read.ago) if (ago >= 0) at = Math.max(at ?? -Infinity, Math.floor(now - ago))
      return { at, rearmed: false }
    })
    return { exact: true, latest } satisfies Arrivals
  })
