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
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Util from "node:util"
import { native, type NativeError } from "./internal/native.js"
import * as Signal from "./Signal.js"
import { event } from "./Logging.js"

/** How a process ended: an exit code or a signal (both null if the status was lost). */
export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** What to run. */
export interface SpawnRequest {
  readonly command: readonly [string, ...Array<string>]
  /** Added to soad's own environment, or the whole environment when `inheritEnv` is false. */
  readonly env: Readonly<Record<string, string>>
  readonly inheritEnv: boolean
  readonly cwd: string | undefined
  /** soad's fds of the listeners, in order: the app gets them at 3, 4, … */
  readonly fds: ReadonlyArray<number>
  /** Their names, for `LISTEN_FDNAMES`. */
  readonly fdNames: ReadonlyArray<string>
  /** Run as this user and group (soad must be root). */
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  readonly groups?: ReadonlyArray<number> | undefined
}

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

/** The app could not be started; `message` says why. */
export class SpawnError extends Data.TaggedError("SpawnError")<{
  readonly command: string
  /** The errno name, such as ENOENT or EACCES. */
  readonly code: string
  readonly message: string
  readonly cause?: unknown
}> {}

/** The process operations the Activator needs. */
export class ProcessService extends Context.Tag("soad/ProcessService")<ProcessService, {
  /** Starts the app; closing the scope stops it by `stop` and waits for it. */
  readonly spawn: (request: SpawnRequest, stop: StopPolicy) => Effect.Effect<App, SpawnError, Scope.Scope>
  /** Sends SIGKILL to every running app's process group now (a second Ctrl-C). */
  readonly killAll: Effect.Effect<void>
  /** Sends a signal to every running app's process group (SIGHUP and others soad passes on). */
  readonly signalAll: (signal: Signal.Signal) => Effect.Effect<void>
}>() {}

/** The operating-system calls under the service; tests give a fake one. */
export interface Driver {
  /** Starts the process in a new process group; throws an Error with `code` (ENOENT, …) on failure. */
  readonly spawn: (request: SpawnRequest, onExit: (status: ExitStatus) => void) => number
  /** Sends a signal to the process group `pgid`; a group that is gone is not an error. */
  readonly killGroup: (pgid: number, signal: Signal.Signal) => void
}

/** Builds the service over a driver. */
export const make = (driver: Driver): Effect.Effect<ProcessService["Type"]> =>
  Effect.sync(() => {
    const running = new Set<number>()

    const killGroup = (pid: number, signal: Signal.Signal) => Effect.sync(() => driver.killGroup(pid, signal))

    const spawn = (request: SpawnRequest, policy: StopPolicy): Effect.Effect<App, SpawnError, Scope.Scope> =>
      Effect.gen(function*() {
        const exited = yield* Deferred.make<ExitStatus>()
        const pid = yield* Effect.try({
          try: () => driver.spawn(request, (status) => Deferred.unsafeDone(exited, Effect.succeed(status))),
          catch: (cause) => spawnError(request, cause)
        })
        running.add(pid)
        const exit = Deferred.await(exited)

        const graceful = Effect.gen(function*() {
          if (!(yield* Deferred.isDone(exited))) {
            yield* killGroup(pid, policy.signal)
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
          // The leader is gone; whatever it left in its group goes too.
          yield* killGroup(pid, Signal.SIGKILL)
          running.delete(pid)
          return status
        })
        const stop = yield* Effect.cached(graceful)
        yield* Effect.addFinalizer(() => stop)

        return {
          pid,
          exit,
          signal: (signal: Signal.Signal) => killGroup(pid, signal),
          stop
        }
      })

    const signalAll = (signal: Signal.Signal) =>
      Effect.sync(() => {
        for (const pid of running) driver.killGroup(pid, signal)
      })

    return { spawn, killAll: signalAll(Signal.SIGKILL), signalAll }
  })

const spawnError = (request: SpawnRequest, cause: unknown): SpawnError => {
  const program = request.command[0]
  const errno = (cause as NativeError).errno
  const code = typeof errno === "number"
    ? Util.getSystemErrorName(-errno)
    : (cause as NodeJS.ErrnoException).code ?? "UNKNOWN"
  const syscall = (cause as NativeError).syscall
  const who = request.uid !== undefined ? `uid ${request.uid}` : "soad's user"
  const reason = code === "ENOENT" && (syscall === "execve" || syscall === undefined)
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

/** Names LISTEN_* and NOTIFY_SOCKET: soad's own, never passed on by inheritance. */
const privateVariables = new Set(["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"])

/** The app's environment: soad's (less its private variables) or none, the extra variables, LISTEN_FDS/NAMES. */
export const environment = (
  base: NodeJS.ProcessEnv,
  request: SpawnRequest
): Array<string> => {
  const env: Record<string, string> = {}
  if (request.inheritEnv) {
    for (const [key, value] of Object.entries(base)) {
      if (value !== undefined && !privateVariables.has(key)) env[key] = value
    }
  }
  Object.assign(env, request.env)
  env.LISTEN_FDS = String(request.fds.length)
  env.LISTEN_FDNAMES = request.fdNames.join(":")
  delete env.LISTEN_PID // set by the child itself to its own pid
  return Object.entries(env).map(([key, value]) => `${key}=${value}`)
}

/** The driver over the native binding: fork/exec with LISTEN_PID, a new session, the parent-death signal. */
export const nativeDriver = (): Driver => {
  const n = native()
  return {
    spawn: (request, onExit) =>
      n.spawn(
        request.command[0],
        request.command,
        environment(process.env, request),
        request.fds,
        {
          cwd: request.cwd,
          uid: request.uid,
          gid: request.gid,
          groups: request.groups,
          listenPid: true,
          pdeathsig: true
        },
        (code, signal) =>
          onExit({ code, signal: signal === null ? null : Signal.fromNumber(signal)?.name ?? null })
      ),
    killGroup: (pgid, signal) => {
      try {
        process.kill(-pgid, signal.number)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
      }
    }
  }
}

/** The live layer. */
export const layer: Layer.Layer<ProcessService> = Layer.effect(ProcessService, Effect.suspend(() => make(nativeDriver())))
