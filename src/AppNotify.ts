/**
 * An app's own NOTIFY_SOCKET for one run (`--ready notify`): a datagram socket soad binds in the abstract namespace
 * (`@soad/<soad's pid>/<service>/<n>-<random>`, never soad's own NOTIFY_SOCKET), read with each sender's credentials
 * (SO_PASSCRED: the kernel, not the sender, fills in pid and uid), and which process session a sender is in, so the
 * run accepts datagrams from the app's processes only. A Context.Reference: the live one unless a test provides a
 * fake.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { native } from "./os/native.js"

/** One datagram and who sent it (from SCM_CREDENTIALS; pid 0 if the kernel gave none). */
export interface NotifyMessage {
  readonly message: string
  readonly pid: number
  readonly uid: number
}

/** A bound notify socket: the address for the app's NOTIFY_SOCKET, and its datagrams as they come. */
export interface NotifySocket {
  readonly path: string
  /** Waits for datagrams and returns those that came (at least one). */
  readonly receive: Effect.Effect<ReadonlyArray<NotifyMessage>>
}

/** The notify socket cannot be opened; `code` is the errno name. */
export class NotifyError extends Data.TaggedError("NotifyError")<{ readonly code: string; readonly message: string }> {}

/** What the run core needs: a socket per run, and the session a sender is in. */
export interface AppNotifyApi {
  /** Binds a fresh notify socket for a run of `service`, closed with the scope. */
  readonly open: (service: string) => Effect.Effect<NotifySocket, NotifyError, Scope.Scope>
  /** The process session `pid` is in (the app is its session's leader, so its processes are in session app.pid). */
  readonly sessionOf: (pid: number) => Effect.Effect<number | undefined>
}

let opened = 0

/** The session id of a process (field 6 of /proc/PID/stat), undefined if it is gone. */
const sessionOfLive = (pid: number): Effect.Effect<number | undefined> =>
  Effect.sync(() => {
    if (!Number.isInteger(pid) || pid <= 0) return undefined
    try {
      const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      // The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ")".
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      const session = Number(fields[3])
      return Number.isInteger(session) ? session : undefined
    } catch {
      return undefined
    }
  })

/** Waits until fd is readable (one-shot watch), then reads what came; a wake with nothing waits again. */
const receiveLive = (fd: number): Effect.Effect<ReadonlyArray<NotifyMessage>> =>
  Effect.async<ReadonlyArray<NotifyMessage>>((resume) => {
    const n = native()
    let id: number | undefined
    const arm = (): void => {
      id = n.watch(fd, (error) => {
        id = undefined
        if (error !== null) return resume(Effect.dieMessage(`watching a notify socket failed: ${error}`))
        try {
          const messages = n.notifyRead(fd)
          if (messages.length === 0) return arm()
          resume(Effect.succeed(messages))
        } catch (cause) {
          resume(Effect.die(cause))
        }
      })
    }
    arm()
    return Effect.sync(() => {
      if (id !== undefined) n.unwatch(id)
    })
  })

const openLive = (service: string): Effect.Effect<NotifySocket, NotifyError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        opened += 1
        const random = Math.floor(Math.random() * 0xffffffff).toString(16)
        const path = `@soad/${process.pid}/${service}/${opened}-${random}`
        return { path, fd: native().notifyListen(path) }
      },
      catch: (cause) => {
        const errno = (cause as { errno?: number }).errno
        const code = Object.entries(Os.constants.errno).find(([, value]) => value === errno)?.[0] ?? "EIO"
        return new NotifyError({ code, message: `cannot open the app's notify socket: ${(cause as Error).message}` })
      }
    }),
    ({ fd }) => Effect.sync(() => native().close(fd))
  ).pipe(Effect.map(({ fd, path }): NotifySocket => ({ path, receive: receiveLive(fd) })))

/** The live notify sockets, over the addon. */
export const live: AppNotifyApi = { open: openLive, sessionOf: sessionOfLive }

/** The notify sockets runs use: the live ones unless a test provides others. */
export class AppNotify extends Context.Reference<AppNotify>()("soad/AppNotify", { defaultValue: () => live }) {}
