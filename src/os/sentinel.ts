/**
 * Exact counting for an app that runs as another user, through a sentinel process of that user
 * (src/native/helper/sentinel.c). The counting signal is set on the file description the app shares; when soad
 * owned it, the app could change the signal to SIGKILL and connect to itself, and the kernel (which checks the
 * credentials of whoever called F_SETOWN) would kill root soad. With the sentinel as owner, that signal reaches only
 * the sentinel; soad sees it die and counts by readability for the rest of the run.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Fs from "node:fs"
import * as Os from "node:os"
import type * as Scope from "effect/Scope"
import * as Monotonic from "../core/monotonic.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import { event } from "../Logging.js"
import { helperPath, type Native } from "./native.js"
import type { Arrivals, LatestArrival, Listener } from "./socketTypes.js"

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
    const countSignal = n.sentinelRead(memory.id).signal
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
      const now = yield* Monotonic.now
      // First: signals still in the sentinel's queue (it writes their moment before it takes them).
      const queued = signalsQueued(pid, [countSignal, sigio])
      const before = n.sentinelRead(memory.id)
      if (before.armed === 0) return { at: undefined, rearmed: true } // not counting yet: nothing can be said
      const owners = listeners.map((listener) => n.countOwner(listener.fd))
      const after = n.sentinelRead(memory.id)
      const seen = readSentinel(pid, before, owners, after, now)
      return queued && !seen.rearmed ? { at: now, rearmed: false } : seen
    })
    // The app shares the settings: it may have moved the owner away or changed the signal. Ask the sentinel
    // (never soad, whose credentials would make the signal dangerous again) to take them back.
    const look = Effect.tap(latest, (seen) =>
      Effect.sync(() => {
        if (!seen.rearmed) return
        try {
          process.kill(pid, "SIGHUP")
        } catch {
          // it has just died: the fiber above takes over
        }
      }))
    return { exact: true, latest: look } satisfies Arrivals
  })

/** What soad reads of a sentinel's page (native sentinelRead). */
type SentinelPage = ReturnType<Native["sentinelRead"]>

/**
 * The latest arrival from two reads of the sentinel's page around a look at each listener's settings (`now`:
 * Clock ms). After a connection the sentinel switches a listener to its quiet signal for 100 ms (so that it does
 * not wake for each one), then back, and writes that moment as its latest arrival if connections came meanwhile:
 * while a listener's window counter is odd, or changed between the reads, a connection may be arriving now. The
 * quiet signal is the sentinel's own only then (the counter turns odd before the switch, even after the switch
 * back); another owner or signal, or O_ASYNC cleared, is the app's doing: rearmed (the sentinel must take it
 * back, and what arrived meanwhile is unknown).
 */
export const readSentinel = (
  pid: number,
  before: SentinelPage,
  owners: ReadonlyArray<{ readonly owner: number; readonly signal: number; readonly async: boolean }>,
  after: SentinelPage,
  now: number
): LatestArrival => {
  let at: number | undefined
  let rearmed = false
  owners.forEach((owner, i) => {
    const counter = before.windows[i] ?? 0
    const open = counter % 2 === 1 || counter !== after.windows[i]
    const ours = owner.signal === after.signal || (owner.signal === after.quiet && open)
    if (owner.owner !== pid || !ours || !owner.async) rearmed = true
    const ago = after.ago[i] ?? -1
    const latest = open ? now : ago >= 0 ? Math.floor(now - ago) : undefined
    if (latest !== undefined) at = Math.max(at ?? -Infinity, latest)
  })
  return rearmed ? { at: undefined, rearmed } : { at, rearmed }
}

/** SIGIO: the kernel's queue of real-time signals overflowed (the sentinel takes it too). */
const sigio = Os.constants.signals.SIGIO

/**
 * Does a connection's signal wait in the sentinel's queue (read from /proc/PID/status)? Then a connection has
 * arrived that the sentinel has not written yet: activity now. Unreadable (the sentinel has just ended): the same,
 * which is never early.
 */
const signalsQueued = (pid: number, signals: ReadonlyArray<number>): boolean => {
  let status: string
  try {
    status = Fs.readFileSync(`/proc/${pid}/status`, "latin1")
  } catch {
    return true
  }
  return pendingIn(status, signals)
}

/** The hex masks of pending signals in a /proc/PID/status: the thread's own (SigPnd) and the process's (ShdPnd). */
const pendingFields = ["SigPnd:", "ShdPnd:"]

/**
 * Whether /proc/PID/status text says one of `signals` is pending (signal k is bit k - 1 of SigPnd or ShdPnd). Each
 * line is looked at once; a field that is not 1 to 32 hex digits, or missing, reads as pending (never early). The
 * process's name, the one field its user may set, cannot start a line: the kernel escapes newlines in it.
 */
export const pendingIn = (status: string, signals: ReadonlyArray<number>): boolean => {
  let found = 0
  for (let start = 0; start < status.length;) {
    const end = status.indexOf("\n", start)
    const stop = end < 0 ? status.length : end
    for (const field of pendingFields) {
      if (!status.startsWith(field, start)) continue
      const hex = status.slice(start + field.length, stop).trim()
      if (!/^[0-9a-f]{1,32}$/.test(hex)) return true
      const mask = BigInt(`0x${hex}`)
      if (signals.some((signal) => signal >= 1 && ((mask >> BigInt(signal - 1)) & 1n) === 1n)) return true
      found++
    }
    start = stop + 1
  }
  return found < pendingFields.length
}
