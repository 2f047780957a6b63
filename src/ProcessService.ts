/**
 * The app's process: started in a Scope with the listeners at fds 3, 4, …, in its own process group;
 * closing the scope stops it gracefully (the shutdown signal, then SIGKILL after the stop timeout).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as AppLogs from "./observe/appLogs.js"
import { errnoName, type NativeError } from "./os/nativeErrors.js"
import * as Processes from "./os/processes.js"
import type { ArmOutcome, Containment, Driver, DriverLane, ExitStatus, Peer, SpawnRequest } from "./os/processTypes.js"
import * as Signal from "./Signal.js"
import { event } from "./Logging.js"
import type { Wakeup } from "./SocketService.js"

/**
 * What to run and how it ended, a connection's peer, the Driver (the operating-system calls under the service;
 * tests give a fake one) with its armed starts and lanes, and containment: cgroups and the guard.
 */
export type {
  ArmOutcome,
  Containment,
  Driver,
  DriverLane,
  DriverLaneEvents,
  ExitStatus,
  Guarantee,
  Keeping,
  Peer,
  SpawnRequest
} from "./os/processTypes.js"

/** The app's environment: soad's (less its private variables) or none, the extra variables, LISTEN_FDS/NAMES. */
export { environment } from "./os/processes.js"

/** How to stop the app. */
export interface StopPolicy {
  readonly signal: Signal.Signal
  readonly timeout: Duration.Duration
}

/** A running app. */
export interface App {
  readonly pid: number
  /** Waits until the app has exited. */
  readonly exit: Effect.Effect<ExitStatus>
  /** Sends a signal to the app's process group. */
  readonly signal: (signal: Signal.Signal) => Effect.Effect<void>
  /** Stops the app by the stop policy and waits for it; safe to call more than once. */
  readonly stop: Effect.Effect<ExitStatus>
}

/**
 * What `spawnOnPending` came to: the app a connection started; a wake first (nothing started); nothing armed
 * (the start could not be prepared: the caller waits for the connection and spawns, which reports why); or the
 * listener at `index` woke because it no longer listens (an app shut it down: nothing started).
 */
export type Pending =
  | Started
  | { readonly _tag: "Woken" }
  | { readonly _tag: "NotArmed"; readonly reason: SpawnError }
  | { readonly _tag: "NotListening"; readonly index: number }

/** An app a connection started (`spawnOnPending`). */
export interface Started {
  readonly _tag: "Started"
  /** Which of the request's `fds` the connection is pending on. */
  readonly index: number
  readonly app: App
  /** From the wake to the app's exec (ms), measured where it happened. */
  readonly spawnMs: number
  /** How long ago (ms) the connection woke soad, at the moment this is called. */
  readonly sinceWake: () => number
}

/** The app could not be started; `message` says why. */
export class SpawnError extends Data.TaggedError("SpawnError")<{
  readonly command: string
  /** The errno name, such as ENOENT or EACCES. */
  readonly code: string
  readonly message: string
  readonly cause?: unknown
}> {}

/** A connection soad still holds because its instance could not be started: its fd, and how to close it. */
export interface HeldConnection {
  readonly fd: number
  readonly close: () => void
}

/**
 * What accept mode's lane tells, synchronously, as it happens (no fiber runs for a connection). A start given
 * (`Lane.give`) is used up by `started` or `failed`, and given back by `acceptFailed`.
 */
export interface LaneEvents {
  /** A connection from `peer` on listener `index`: may it have an instance? false: it is closed at once. Must not give or take back a start. */
  readonly admit: (index: number, peer: Peer) => boolean
  /** Its instance runs, with the start given. */
  readonly started: (app: App) => void
  /** Its instance could not be started (the start given is used up); soad still holds the connection: close it, or start it again. */
  readonly failed: (error: SpawnError, connection: HeldConnection) => void
  /** Accepting on listener `index` failed (out of fds, most often): the start given is the caller's again. */
  readonly acceptFailed: (index: number, code: string, message: string) => void
  /** An instance exited by itself, and what it left is gone (its process group, its cgroup). Not said of one stopped by `stop`. */
  readonly exited: (app: App, status: ExitStatus) => void
}

/** Accept mode's lane: connections taken and instances started in the driver's own callback while a start is given. */
export interface Lane {
  /** Gives a start (the caller holds a permit and a token for it): the next connection admitted uses it. The error: nothing was given (its cgroup could not be made). */
  readonly give: () => SpawnError | undefined
  /** Takes back a start given and not used: true; false if none was. */
  readonly takeBack: () => boolean
}

/** The process operations the Activator needs. */
export class ProcessService extends Context.Tag("soad/ProcessService")<ProcessService, {
  /**
   * Starts the app, its output where the context's AppLogs says (`AppLogs.inherit`: soad's stdout and stderr);
   * closing the scope stops it by `stop` and waits for it.
   */
  readonly spawn: (request: SpawnRequest, stop: StopPolicy) => Effect.Effect<App, SpawnError, Scope.Scope | AppLogs.AppLogs>
  /**
   * The cold path: starts the app as soon as a connection is pending on one of `request.fds` (its listeners), with
   * no JS between the wake and the fork (Linux); as `spawn` then, and fails as it does if the start fails. Ends
   * without starting if `wakeup` fires first, or if a listener wakes it only because it no longer listens. Absent
   * where the driver cannot: wait for the listeners, then `spawn`.
   */
  readonly spawnOnPending?: (
    request: SpawnRequest,
    stop: StopPolicy,
    wakeup: Wakeup
  ) => Effect.Effect<Pending, SpawnError, Scope.Scope | AppLogs.AppLogs>
  /**
   * `--accept`'s lane: `request` is an instance's (its connection a placeholder), and the driver polls `listeners`
   * itself; while a start is given, it takes a connection, asks `events.admit`, starts its instance and only then
   * says so, with no fiber per connection (the mode's bookkeeping runs in `events`). Each instance stops by `stop`
   * as a spawned app does. Closing the scope ends the lane (instances live on). Absent where the driver cannot.
   */
  readonly acceptLane?: (
    listeners: ReadonlyArray<number>,
    request: SpawnRequest,
    stop: StopPolicy,
    events: LaneEvents
  ) => Effect.Effect<Lane, SpawnError, Scope.Scope | AppLogs.AppLogs>
  /** Sends SIGKILL to every running app's process group now (a second Ctrl-C). */
  readonly killAll: Effect.Effect<void>
  /** Sends a signal to every running app's process group (SIGHUP and others soad passes on). */
  readonly signalAll: (signal: Signal.Signal) => Effect.Effect<void>
  /** Kills what a previous soad, now dead, left running for this unit (logged as `leftover`); before listening. */
  readonly reclaim: (unit: string) => Effect.Effect<void>
  /**
   * Logs once which guarantee this platform gives about what an app starts (event `containment`) and, from then
   * on, what becomes of soad-guard (`guard_died`, `guard_restarted`): the live layer replaces a guard that dies
   * once this has run. Call it where soad logs as configured, once.
   */
  readonly announce: Effect.Effect<void>
}>() {}

/** How long a cgroup may take to empty after SIGKILL before soad gives up on removing it. */
const emptyTimeout = Duration.seconds(5)
const emptyRecheck = Duration.millis(10)

/** Builds the service over a driver. */
export const make = (driver: Driver): Effect.Effect<ProcessService["Type"]> =>
  Effect.sync(() => {
    const running = new Set<number>()
    const containment = driver.containment

    /** SIGKILL to the cgroup until it is empty, then removes it; how many processes were in it at first, and if it is gone. */
    const clear = (c: Containment, cgroup: string) =>
      Effect.gen(function*() {
        const found = c.kill(cgroup)
        // Runs in a release (uninterruptible): interruptible, so that the timeout can end the wait.
        const emptied = yield* Effect.suspend(() => Effect.succeed(c.kill(cgroup) === 0 && c.remove(cgroup))).pipe(
          Effect.repeat({ schedule: Schedule.spaced(emptyRecheck), until: (done) => done }),
          Effect.interruptible,
          Effect.timeoutOption(emptyTimeout)
        )
        if (Option.isNone(emptied)) {
          yield* event("warn", "cgroup_busy", `${cgroup} still has processes ${Duration.format(emptyTimeout)} after SIGKILL: left in place`, {
            cgroup
          })
        }
        return { found, emptied: Option.isSome(emptied) }
      })

    /** Kills whatever the app left in its cgroup, removes the cgroup, and stops guarding the app. */
    const release = (pid: number) =>
      Effect.gen(function*() {
        if (containment === undefined) return
        const cgroup = containment.cgroupOf(pid)
        if (cgroup !== undefined) {
          const { emptied, found: left } = yield* clear(containment, cgroup)
          if (!emptied) return // still guarded, and its name stays taken
          if (left > 0) {
            yield* event("info", "leftovers_killed", `killed ${left} process${left === 1 ? "" : "es"} the app left behind`, {
              pid,
              count: left
            })
          }
        }
        containment.forget(pid)
      })

    const killGroup = (pid: number, signal: Signal.Signal) => Effect.sync(() => driver.killGroup(pid, signal))

    /** Where the app's stdout and stderr go, as the context's AppLogs says (undefined: soad's own, inherited). */
    const outputOf = (request: SpawnRequest) =>
      Effect.map(AppLogs.AppLogs, (logs) => logs.output(request.service ?? request.unit ?? request.command[0]))

    /**
     * The stop policy applied to a running app: its exit status once it (and its group, its cgroup) are gone. Its
     * output is released first: an app paused over its output rate writes its last lines without waiting on soad.
     */
    const stopGracefully = (
      pid: number,
      exit: Effect.Effect<ExitStatus>,
      exited: Deferred.Deferred<ExitStatus>,
      policy: StopPolicy,
      output: AppLogs.Output | undefined
    ) =>
      Effect.gen(function*() {
        if (output !== undefined) yield* Effect.sync(() => output.release(pid))
        if (!(yield* Deferred.isDone(exited))) {
          yield* killGroup(pid, policy.signal)
          // Runs in a scope's release, which is uninterruptible: the wait is made interruptible so that the
          // timeout can end it (otherwise timeoutOption waits for the exit forever).
          const status = yield* exit.pipe(Effect.interruptible, Effect.timeoutOption(policy.timeout))
          if (Option.isNone(status)) {
            yield* event(
              "warn",
              "kill",
              `app (pid ${pid}) did not exit within ${Duration.format(policy.timeout)} of ${policy.signal.name}: sending SIGKILL`,
              { pid, stop_timeout_ms: Duration.toMillis(policy.timeout) }
            )
            yield* killGroup(pid, Signal.SIGKILL)
          }
        }
        const status = yield* exit
        // The leader is gone; whatever it left in its group goes too, and in its cgroup (daemons).
        yield* killGroup(pid, Signal.SIGKILL)
        yield* release(pid)
        running.delete(pid)
        return status
      })

    const spawn = (request: SpawnRequest, policy: StopPolicy): Effect.Effect<App, SpawnError, Scope.Scope | AppLogs.AppLogs> =>
      Effect.gen(function*() {
        const exited = yield* Deferred.make<ExitStatus>()
        const exit = Deferred.await(exited)
        const output = yield* outputOf(request)
        // The fork and the registration of its stop are one uninterruptible acquisition: an interruption at any
        // moment after the fork still stops the app gracefully when the scope closes.
        const { pid, stop } = yield* Effect.acquireRelease(
          Effect.gen(function*() {
            const pid = yield* Effect.try({
              try: () => driver.spawn(request, (status) => Deferred.unsafeDone(exited, Effect.succeed(status)), output),
              catch: (cause) => spawnError(request, cause)
            })
            running.add(pid)
            return { pid, stop: yield* Effect.cached(stopGracefully(pid, exit, exited, policy, output)) }
          }),
          ({ stop }) => stop
        )
        return { pid, exit, signal: (signal: Signal.Signal) => killGroup(pid, signal), stop }
      })

    /**
     * The cold path: the driver arms the listeners; its callback runs in the same turn as the start, so the app is
     * known (and its stop is this scope's) before anything else can run. The release stops a started app, as
     * spawn's does, or disarms a start that never fired.
     */
    const arm = driver.arm
    const spawnOnPending = arm === undefined ? undefined : (request: SpawnRequest, policy: StopPolicy, wakeup: Wakeup) =>
      Effect.gen(function*() {
        const exited = yield* Deferred.make<ExitStatus>()
        const exit = Deferred.await(exited)
        const output = yield* outputOf(request)
        const state: { pid?: number; outcome?: ArmOutcome; heard?: (outcome: ArmOutcome) => void } = {}
        const stop = yield* Effect.cached(Effect.suspend(() => stopGracefully(state.pid!, exit, exited, policy, output)))
        const armed = yield* Effect.either(Effect.acquireRelease(
          Effect.try({
            try: () =>
              arm(request, (status) => Deferred.unsafeDone(exited, Effect.succeed(status)), (outcome) => {
                if (outcome._tag === "Started") {
                  state.pid = outcome.pid
                  running.add(outcome.pid)
                }
                state.outcome = outcome
                state.heard?.(outcome)
              }, output),
            catch: (cause) => spawnError(request, cause)
          }),
          (disarm) => state.pid !== undefined ? Effect.asVoid(stop) : Effect.sync(() => void disarm())
        ))
        if (Either.isLeft(armed)) return { _tag: "NotArmed", reason: armed.left } satisfies Pending
        const disarm = armed.right
        const outcome = yield* Effect.async<ArmOutcome | undefined>((resume) => {
          if (state.outcome !== undefined) return resume(Effect.succeed(state.outcome))
          // Whichever ends the wait leaves the wake signal: a wake after it (`soad restart`'s, before the next
          // arming) must find no listener, and wait for the next one, rather than go to this finished start.
          let unsubscribe = () => {}
          state.heard = (outcome) => {
            unsubscribe()
            resume(Effect.succeed(outcome))
          }
          // A wake disarms the start, unless the connection has already fired it.
          unsubscribe = wakeup.subscribe(() => {
            if (!disarm()) return
            unsubscribe()
            resume(Effect.succeed(undefined))
          })
          return Effect.sync(() => unsubscribe())
        })
        if (outcome === undefined) return { _tag: "Woken" } satisfies Pending
        if (outcome._tag === "NotListening") return outcome satisfies Pending
        if (outcome._tag === "Failed") return yield* Effect.fail(spawnError(request, outcome.error))
        const { index, pid, spawnMs, wokeAtNs } = outcome
        const app: App = { pid, exit, signal: (signal: Signal.Signal) => killGroup(pid, signal), stop }
        // The addon took wokeAtNs from CLOCK_MONOTONIC in its poll callback: the same clock as process.hrtime, and a
        // real latency (the cold path's), which the Clock of durations (TestClock in tests) cannot measure.
        const sinceWake = () => Number(process.hrtime.bigint() - wokeAtNs) / 1e6
        return { _tag: "Started", index, app, spawnMs, sinceWake } satisfies Pending
      })

    /**
     * An app that exited by itself, its leftovers dealt with now, without a fiber: its output released, its group
     * killed, its cgroup removed (an empty one goes at the first rmdir). false (nothing forgotten yet) if its cgroup
     * still has processes, or anything failed: `reap` does it then, with its waits, and says what it killed.
     */
    const reapNow = (pid: number, output: AppLogs.Output | undefined): boolean => {
      try {
        output?.release(pid)
        driver.killGroup(pid, Signal.SIGKILL)
        const cgroup = containment?.cgroupOf(pid)
        if (cgroup !== undefined && !containment!.remove(cgroup)) return false
      } catch {
        return false
      }
      containment?.forget(pid)
      running.delete(pid)
      return true
    }

    /** What reapNow could not do at once: the group killed, the cgroup emptied (waiting up to emptyTimeout) and removed. */
    const reap = (pid: number) =>
      Effect.gen(function*() {
        yield* killGroup(pid, Signal.SIGKILL)
        yield* release(pid)
        running.delete(pid)
      })

    /**
     * Accept mode's lane over the driver's armed accept. Each instance is an App whose exit the driver reports with
     * its pid; one that exits by itself is reaped at once in that callback (reapNow), and `events.exited` follows;
     * one being stopped is left to its stop. A connection costs no fiber.
     */
    const armAccept = driver.armAccept
    const acceptLane = armAccept === undefined
      ? undefined
      : (listeners: ReadonlyArray<number>, request: SpawnRequest, policy: StopPolicy, events: LaneEvents) =>
        Effect.gen(function*() {
          const output = yield* outputOf(request)
          const runtime = yield* Effect.runtime<never>()
          interface Instance {
            readonly app: App
            /** The exit, as the driver reported it. */
            readonly exited: Deferred.Deferred<ExitStatus>
            /** The exit, once what the instance left is gone too. */
            readonly done: Deferred.Deferred<ExitStatus>
            /** A stop (or the reaping of its exit) has begun: it finishes the instance. */
            ending: boolean
          }
          const instances = new Map<number, Instance>()
          const finished = (instance: Instance, status: ExitStatus) => {
            instances.delete(instance.app.pid)
            Deferred.unsafeDone(instance.done, Effect.succeed(status))
          }
          const exit = (pid: number, status: ExitStatus) => {
            const instance = instances.get(pid)
            if (instance === undefined) return
            Deferred.unsafeDone(instance.exited, Effect.succeed(status))
            if (instance.ending) return // its stop takes it from here
            instance.ending = true
            const gone = () => {
              finished(instance, status)
              events.exited(instance.app, status)
            }
            if (reapNow(pid, output)) return gone()
            Runtime.runFork(runtime)(Effect.zipRight(reap(pid), Effect.sync(gone)))
          }
          const started = (pid: number) => {
            running.add(pid)
            const exited = Deferred.unsafeMake<ExitStatus>(FiberId.none)
            const instance: Instance = {
              exited,
              done: Deferred.unsafeMake<ExitStatus>(FiberId.none),
              ending: false,
              app: {
                pid,
                exit: Deferred.await(exited),
                signal: (signal: Signal.Signal) => killGroup(pid, signal),
                stop: Effect.suspend(() => {
                  if (instance.ending) return Deferred.await(instance.done)
                  instance.ending = true
                  return Effect.tap(
                    stopGracefully(pid, Deferred.await(exited), exited, policy, output),
                    (status) => Effect.sync(() => finished(instance, status))
                  )
                })
              }
            }
            instances.set(pid, instance)
            events.started(instance.app)
          }
          let armed: DriverLane | undefined
          const lane = yield* Effect.acquireRelease(
            Effect.try({
              try: () =>
                armed = armAccept(listeners, request, {
                  admit: events.admit,
                  started,
                  failed: (error, fd) => events.failed(spawnError(request, error), { fd, close: () => armed?.close(fd) }),
                  acceptFailed: (index, error) =>
                    events.acceptFailed(index, errnoName(error), (error as Error).message ?? String(error)),
                  exit
                }, output),
              catch: (cause) => spawnError(request, cause)
            }),
            (lane) => Effect.sync(() => lane.disarm())
          )
          return {
            give: () => {
              try {
                lane.give()
                return undefined
              } catch (cause) {
                return spawnError(request, cause)
              }
            },
            takeBack: () => lane.takeBack()
          } satisfies Lane
        })

    const signalAll = (signal: Signal.Signal) =>
      Effect.sync(() => {
        for (const pid of running) driver.killGroup(pid, signal)
      })

    const killAll = Effect.sync(() => {
      for (const pid of running) {
        driver.killGroup(pid, Signal.SIGKILL)
        const cgroup = containment?.cgroupOf(pid)
        if (cgroup !== undefined) containment?.kill(cgroup)
      }
    })

    const reclaim = (unit: string): Effect.Effect<void> => {
      if (containment === undefined) return Effect.void
      return Effect.forEach(containment.leftovers(unit), (cgroup) =>
        Effect.gen(function*() {
          const count = containment.kill(cgroup)
          yield* event(
            "warn",
            "leftover",
            `a previous soad left ${count} process${count === 1 ? "" : "es"} running in ${cgroup}: killing them`,
            { cgroup, count }
          )
          yield* clear(containment, cgroup)
        }), { discard: true })
    }

    const announce = containment === undefined
      ? Effect.void
      : event(containment.level, "containment", containment.message, {
        guarantee: containment.guarantee,
        ...containment.fields
      })

    return {
      spawn,
      ...(spawnOnPending === undefined ? {} : { spawnOnPending }),
      ...(acceptLane === undefined ? {} : { acceptLane }),
      killAll,
      signalAll,
      reclaim,
      announce
    }
  })

const spawnError = (request: SpawnRequest, cause: unknown): SpawnError => {
  const program = request.command[0]
  const code = errnoName(cause)
  const syscall = (cause as NativeError).syscall
  const who = request.uid !== undefined ? `uid ${request.uid}` : "soad's user"
  const interpreter = code === "ENOENT" && syscall === "execve" ? missingInterpreter(request) : undefined
  const reason = interpreter !== undefined
    ? `'${interpreter.script}' exists, but its interpreter ${interpreter.path} (its #! line) does not`
    : code === "ENOENT" && (syscall === "execve" || syscall === undefined)
    ? `command not found: '${program}' (check the name and PATH)`
    : code === "EACCES" && syscall === "execve"
    ? `'${program}' is not executable (check its permissions)`
    : syscall === "chdir" && code === "ENOENT"
    ? `the working directory ${request.cwd} does not exist`
    : syscall === "chdir"
    ? `the working directory ${request.cwd} cannot be entered by ${who} (${code})`
    : syscall === "setuid" || syscall === "setgid" || syscall === "setgroups"
    ? `cannot switch to uid ${request.uid ?? "-"}, gid ${request.gid ?? "-"} (${syscall}: ${code}): the app was not started`
    : code === "ENOEXEC"
    ? `'${program}' is not a program this system can run (a script needs a #! line)`
    : `cannot start '${program}': ${(cause as Error).message ?? String(cause)}`
  return new SpawnError({ command: program, code, message: reason, cause })
}

/**
 * execve says ENOENT both for a missing program and for a script whose `#!` interpreter is missing: tell them
 * apart, so the message names what is really missing.
 */
const missingInterpreter = (request: SpawnRequest): { readonly script: string; readonly path: string } | undefined => {
  const program = request.command[0]
  const dirs = program.includes("/")
    ? [request.cwd ?? process.cwd()]
    : (request.env.PATH ?? (request.inheritEnv ? process.env.PATH : undefined) ?? "/usr/local/bin:/usr/bin:/bin").split(":")
  for (const dir of dirs) {
    const script = Path.resolve(dir === "" ? "." : dir, program)
    let head: string
    try {
      const fd = Fs.openSync(script, "r")
      try {
        const buffer = Buffer.alloc(256)
        head = buffer.subarray(0, Fs.readSync(fd, buffer, 0, buffer.length, 0)).toString("latin1")
      } finally {
        Fs.closeSync(fd)
      }
    } catch {
      continue
    }
    const shebang = /^#!\s*(\S+)/.exec(head)
    if (shebang !== null && !Fs.existsSync(shebang[1]!)) return { script, path: shebang[1]! }
    return undefined
  }
  return undefined
}

/**
 * The live layer: finds where soad may create cgroups and starts soad-guard (Linux), for as long as the layer
 * lives; once `announce` has run, a guard that dies is replaced.
 */
export const layer: Layer.Layer<ProcessService> = Layer.scoped(
  ProcessService,
  Effect.gen(function*() {
    const { driver, guard } = yield* Processes.live
    const processes = yield* make(driver)
    if (guard === undefined) return processes
    // The guard is watched for as long as this layer lives, by a fiber forked where `announce` runs: it logs
    // with soad's logger, which is set up after this layer is built.
    const scope = yield* Effect.scope
    const watch = yield* Effect.once(Effect.forkIn(guard.supervise, scope))
    return { ...processes, announce: Effect.zipRight(processes.announce, watch) }
  })
)
