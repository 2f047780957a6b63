/**
 * The live notify sockets of AppNotify: a datagram socket per run, bound in the abstract namespace and read with
 * each sender's credentials (SO_PASSCRED), and the process session a sender is in (/proc).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { native } from "./native.js"
import { type AppNotifyApi, NotifyError, type NotifyMessage, type NotifySocket } from "./notifyTypes.js"

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
