/**
 * systemd's notification protocol (sd_notify): READY=1 once every listener is bound, STOPPING=1 when soad
 * begins to shut down, RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload expects) and READY=1 around a
 * SIGHUP reload, and a STATUS= line ("3 of 12 apps running") kept current as apps start and stop. Nothing is sent
 * when NOTIFY_SOCKET is not set.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { event } from "../Logging.js"
import { Registry, statusesOf } from "../Registry.js"
import * as SdNotify from "../os/sdNotify.js"

/** Sends `message` to $NOTIFY_SOCKET, if there is one. */
export const notify = (message: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    const path = process.env.NOTIFY_SOCKET
    if (path === undefined || path === "") return Effect.void
    const shown = message.replaceAll("\n", " ")
    try {
      SdNotify.send(path, message)
      return event("debug", "notify", `told systemd ${shown}`, { notify: shown })
    } catch (error) {
      return event("warn", "notify_failed", `cannot notify systemd at ${path}: ${(error as Error).message}`)
    }
  })

/** CLOCK_MONOTONIC in microseconds (Node's hrtime is libuv's, which reads CLOCK_MONOTONIC on Linux). */
export const monotonicMicros = (): bigint => process.hrtime.bigint() / 1000n

/**
 * RELOADING=1 before a reload, in one datagram with MONOTONIC_USEC: systemd (Type=notify-reload) takes the reload
 * as begun only if that time is after its own signal; READY=1 must follow once the reload is done.
 */
export const reloading: Effect.Effect<void> = Effect.suspend(() =>
  notify(`RELOADING=1\nMONOTONIC_USEC=${monotonicMicros()}`)
)

/** The STATUS= text for `running` apps out of `total`: "3 of 12 apps running". */
export const statusText = (running: number, total: number): string =>
  `${running} of ${total} ${total === 1 ? "app" : "apps"} running`

/** The registry's services as a STATUS= text. */
const summary = Effect.gen(function*() {
  const registry = yield* Registry
  const services = yield* registry.services
  const running = (yield* statusesOf(services)).filter((status) => status.state === "running").length
  return statusText(running, services.length)
})

/**
 * Keeps systemd's STATUS= line current until the scope closes: sent now, then again whenever an app starts or
 * stops or a service comes or goes (the Registry's changes; no polling), if the text changed.
 */
export const keepStatus: Effect.Effect<void, never, Registry | Scope.Scope> = Effect.gen(function*() {
  const path = process.env.NOTIFY_SOCKET
  if (path === undefined || path === "") return
  const registry = yield* Registry
  let last = ""
  const update = Effect.flatMap(summary, (text) => {
    if (text === last) return Effect.void
    last = text
    return notify(`STATUS=${text}`)
  })
  yield* update
  yield* Effect.forkScoped(Effect.forever(Effect.zipRight(registry.nextChange, update)))
})
