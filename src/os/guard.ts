/**
 * soad-guard (src/native/helper/guard.c), the process that outlives soad: soad tells it over a pipe what its
 * apps run in (cgroups, or process groups where there is no cgroup); when soad dies, even by SIGKILL, the pipe
 * closes and the guard kills them all.
 *
 * A guard can die first (the OOM killer, a stray kill): until another runs, a kill -9 of soad would leave an
 * app's daemons running. So soad keeps the list the guard holds, and `supervise` watches the guard: one that dies
 * while soad has not closed it is logged (`guard_died`), a new one is started at once and given every entry of the
 * list (`guard_restarted`). Starts that fail, and guards that die again within 10 s of their start, wait 100 ms,
 * doubling to 30 s, before the next try: never a spin.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Monotonic from "../core/monotonic.js"
import { event } from "../Logging.js"
import * as Format from "../observe/format.js"
import { native } from "./native.js"
import { errnoName } from "./nativeErrors.js"

/** How a guard process ended. */
export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** One guard process, as the supervision sees it: the live one is soad-guard (`spawner`), tests give fakes. */
export interface Child {
  readonly pid: number
  /** Writes one line to its stdin; a line sent to a guard that is gone is lost (the next one gets the whole list). */
  readonly write: (line: string) => void
  /** Closes its stdin: the guard kills everything it guards and exits. */
  readonly close: () => void
  /** Completes once the process has exited. */
  readonly exited: Effect.Effect<Exited>
}

/** soad-guard could not be started (`code`: the errno name, such as ENOENT or EAGAIN). */
export class GuardStartError extends Data.TaggedError("GuardStartError")<{
  readonly code: string
  readonly message: string
}> {}

/** Starts one guard process. */
export type Spawner = Effect.Effect<Child, GuardStartError>

/** A running guard (the same object across restarts). */
export interface Guard {
  /** The pid of the guard running now (a new one after a restart). */
  readonly pid: number
  /** Guard this cgroup directory or process group (a pid as text). */
  readonly add: (entry: string) => void
  /** Stop guarding it: it has been cleaned up. */
  readonly remove: (entry: string) => void
  /**
   * Watches the guard until interrupted, and replaces one that dies while soad has not closed it (events
   * `guard_died`, `guard_restarted`, `guard_restart_failed`). Fork it where soad logs, for as long as the guard's
   * scope lasts.
   */
  readonly supervise: Effect.Effect<void>
}

/**
 * What a guard holds: each entry with how many times it was added and not yet removed, as guard.c keeps them
 * (a line per add, and a remove drops one). A new guard is sent exactly this.
 */
export class Entries {
  private readonly counts = new Map<string, number>()
  /** Records an add. */
  add(entry: string): void {
    this.counts.set(entry, (this.counts.get(entry) ?? 0) + 1)
  }
  /** Records a remove (of an entry not held: nothing, as guard.c does). */
  remove(entry: string): void {
    const count = this.counts.get(entry)
    if (count === undefined) return
    if (count <= 1) this.counts.delete(entry)
    else this.counts.set(entry, count - 1)
  }
  /** How many lines a new guard is sent. */
  get size(): number {
    let size = 0
    for (const count of this.counts.values()) size += count
    return size
  }
  /** The lines that give a new guard everything this one holds. */
  lines(): Array<string> {
    const lines: Array<string> = []
    for (const [entry, count] of this.counts) for (let i = 0; i < count; i++) lines.push(`+${entry}`)
    return lines
  }
}

/**
 * The wait before another start: none after a guard that ran 10 s or more; after one that died sooner, and after a
 * start that failed, 100 ms doubling up to 30 s (a guard something kills at once, or a helper that cannot run,
 * costs one try every 30 s, not a core).
 */
const retryDelay = Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(30))))

/** A guard that ran this long died of something rare: the next one starts at once. */
const stableAfter = Duration.seconds(10)

/**
 * Starts a guard with `spawn` for as long as the scope lasts (closing it closes the guard's stdin, and the guard
 * exits after killing what it still guards). Undefined if the first one cannot be started.
 */
export const make = (spawn: Spawner): Effect.Effect<Guard | undefined, never, Scope.Scope> =>
  Effect.gen(function*() {
    const entries = new Entries()
    const state = yield* Effect.acquireRelease(
      Effect.map(Effect.either(spawn), (first) =>
        first._tag === "Left" ? undefined : { current: first.right, closing: false, startedAt: 0 }),
      (state) =>
        Effect.sync(() => {
          if (state === undefined) return
          state.closing = true
          state.current.close()
        })
    )
    if (state === undefined) return undefined
    state.startedAt = yield* Monotonic.now

    /** The new guard takes over, in one step: every entry added from now on goes to it, and it gets all the others. */
    const takeOver = (child: Child, at: number) =>
      Effect.sync(() => {
        if (state.closing) return child.close()
        state.current = child
        state.startedAt = at
        for (const line of entries.lines()) child.write(line)
      })

    const supervise = Effect.gen(function*() {
      const pause = yield* Schedule.driver(retryDelay)
      let quickDeaths = 0
      for (;;) {
        const dead = state.current
        const status = yield* dead.exited
        if (state.closing) return
        const lived = (yield* Monotonic.now) - state.startedAt
        yield* event(
          "error",
          "guard_died",
          `soad-guard (pid ${dead.pid}) died (${Format.exit(status)}) after ${Format.seconds(lived)}: a daemon of an app ` +
            "may outlive soad until a new guard runs; starting one",
          { guard_pid: dead.pid, code: status.code, signal: status.signal, uptime_ms: lived, entries: entries.size }
        )
        if (lived >= Duration.toMillis(stableAfter)) {
          quickDeaths = 0
          yield* pause.reset
        }
        if (quickDeaths++ > 0) yield* Effect.ignore(pause.next(undefined))
        for (let failures = 1;; failures++) {
          const started = yield* Effect.either(spawn)
          if (started._tag === "Right") {
            yield* takeOver(started.right, yield* Monotonic.now)
            break
          }
          yield* event(
            "error",
            "guard_restart_failed",
            `cannot start soad-guard again: ${started.left.message}; trying again (100 ms, doubling to every 30 s)`,
            { code: started.left.code, failures }
          )
          yield* Effect.ignore(pause.next(undefined))
        }
        if (state.closing) return
        yield* event(
          "info",
          "guard_restarted",
          `soad-guard runs again (pid ${state.current.pid}), guarding ${entries.size} entr${entries.size === 1 ? "y" : "ies"}`,
          { guard_pid: state.current.pid, previous_guard_pid: dead.pid, entries: entries.size }
        )
      }
    })

    return {
      get pid() {
        return state.current.pid
      },
      add: (entry: string) => {
        entries.add(entry)
        state.current.write(`+${entry}`)
      },
      remove: (entry: string) => {
        entries.remove(entry)
        state.current.write(`-${entry}`)
      },
      supervise
    } satisfies Guard
  })

/**
 * soad-guard at `path`, started by the binding's spawn in its own session, with stdin a pipe only soad writes to
 * (close-on-exec, so no app inherits it), stdout /dev/null and soad's stderr. Not node:child_process: it would
 * load child_process and dgram into every soad (about 0.5 MB kept) and cost some 4 ms of start-up (a profile of
 * soad's start; `npm run bench` has the figures).
 *
 * The pipe is blocking: a line is written at once, or soad waits for the guard to read. The guard reads all the
 * time, and 64 KiB of lines (over a thousand entries) wait in the pipe before soad would: only a guard stopped on
 * purpose (SIGSTOP, by root or soad's own user, who could stop soad itself) makes soad wait.
 */
export const spawner = (path: string): Spawner =>
  Effect.flatMap(Deferred.make<Exited>(), (exited) =>
    Effect.try({
      try: () => {
        const n = native()
        const pipe = n.outputPipe()
        let devNull: number | undefined
        try {
          devNull = Fs.openSync("/dev/null", "w")
          const pid = n.spawn(path, ["soad-guard"], [], [], {
            listenPid: false,
            pdeathsig: false,
            stdinFd: pipe.read,
            stdoutFd: devNull
          }, (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal: signalName(signal) })))
          return child(pid, pipe.write, Deferred.await(exited))
        } catch (cause) {
          n.close(pipe.write)
          throw cause
        } finally {
          n.close(pipe.read) // the guard has its copy
          if (devNull !== undefined) Fs.closeSync(devNull)
        }
      },
      catch: (cause) => startError(path, cause)
    }))

/** The guard `pid`, whose stdin soad writes to through `fd`. */
const child = (pid: number, fd: number, exited: Effect.Effect<Exited>): Child => {
  let open = true
  return {
    pid,
    write: (line) => {
      if (!open) return
      try {
        Fs.writeSync(fd, line + "\n")
      } catch {
        // EPIPE: the guard is gone; `exited` says so, and the next one gets the list
      }
    },
    close: () => {
      if (!open) return
      open = false
      Fs.closeSync(fd)
    },
    exited
  }
}

/** A signal's name (SIGKILL) from its number, as node:child_process gives it. */
const signalName = (signal: number | null): NodeJS.Signals | null =>
  signal === null
    ? null
    : (Object.entries(Os.constants.signals).find(([, number]) => number === signal)?.[0] as NodeJS.Signals | undefined) ?? null

const startError = (path: string, cause: unknown): GuardStartError =>
  new GuardStartError({ code: errnoName(cause), message: `spawn ${path}: ${cause instanceof Error ? cause.message : String(cause)}` })

/** Starts soad-guard at `path` (see `make`); undefined if it cannot be started. */
export const start = (path: string): Effect.Effect<Guard | undefined, never, Scope.Scope> => make(spawner(path))
