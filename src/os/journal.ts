/**
 * journald's own socket, to which soad sends each line of an app's output as an entry of its own
 * (observe/appLogs.ts makes the entries, and says when).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { native } from "./native.js"

/** A connection to journald's socket. */
export interface Connection {
  /** Sends one entry (journald's native protocol); false if journald cannot take it now. */
  readonly send: (entry: string) => boolean
}

/** A connection to journald's socket at `path`, undefined if it cannot be reached; it closes with the scope. */
export const connect = (path: string): Effect.Effect<Connection | undefined, never, Scope.Scope> =>
  Effect.gen(function*() {
    const fd = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          return native().journalConnect(path)
        } catch {
          return undefined // no journald socket: the lines go to stderr, which journald reads
        }
      }),
      (fd) => Effect.sync(() => fd !== undefined && native().close(fd))
    )
    if (fd === undefined) return undefined
    return {
      send: (entry) => {
        try {
          return native().journalSend(fd, entry)
        } catch {
          return false
        }
      }
    }
  })
