/**
 * soad-guard (src/native/helper/guard.c), the process that outlives soad: soad tells it over a pipe what its
 * apps run in (cgroups, or process groups where there is no cgroup); when soad dies, even by SIGKILL, the pipe
 * closes and the guard kills them all.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"

/** A running guard. */
export interface Guard {
  readonly pid: number
  /** Guard this cgroup directory or process group (a pid as text). */
  readonly add: (entry: string) => void
  /** Stop guarding it: it has been cleaned up. */
  readonly remove: (entry: string) => void
}

/**
 * Starts the guard at `path` in its own session, with stdin a pipe only soad writes to (close-on-exec, so no
 * app inherits it); closing the scope closes the pipe, and the guard exits. Undefined if it cannot be started.
 */
export const start = (path: string): Effect.Effect<Guard | undefined, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let child: ChildProcess.ChildProcess
      try {
        child = ChildProcess.spawn(path, [], { stdio: ["pipe", "ignore", "inherit"], detached: true })
      } catch {
        return undefined
      }
      const stdin = child.stdin
      if (child.pid === undefined || stdin === null) return undefined
      let gone = false
      child.on("error", () => (gone = true))
      child.on("exit", () => (gone = true))
      stdin.on("error", () => (gone = true)) // EPIPE: the guard was killed; nothing to tell any more
      child.unref()
      const send = (line: string) => {
        if (!gone) stdin.write(line + "\n")
      }
      return {
        pid: child.pid,
        add: (entry: string) => send(`+${entry}`),
        remove: (entry: string) => send(`-${entry}`),
        close: () => stdin.end()
      }
    }),
    (guard) => Effect.sync(() => guard?.close())
  )
