/**
 * systemd's notification protocol (sd_notify): READY=1 once every listener is bound, STOPPING=1 when soad
 * begins to shut down. Nothing is sent when NOTIFY_SOCKET is not set.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { event } from "../Logging.js"
import { native } from "./native.js"

/** Sends `message` to $NOTIFY_SOCKET, if there is one. */
export const notify = (message: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    const path = process.env.NOTIFY_SOCKET
    if (path === undefined || path === "") return Effect.void
    try {
      native().notify(path, message)
      return event("debug", "notify", `told systemd ${message}`, { notify: message })
    } catch (error) {
      return event("warn", "notify_failed", `cannot notify systemd at ${path}: ${(error as Error).message}`)
    }
  })
