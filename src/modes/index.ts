/**
 * The modes, by what a service's config asks for: the one table a new mode is added to.
 *
 * @internal
 */
import type { AppNotify } from "../AppNotify.js"
import type * as Effect from "effect/Effect"
import type { Budget } from "../Budget.js"
import type { AppLogs } from "../observe/appLogs.js"
import type { ProcessService } from "../ProcessService.js"
import type { Registry } from "../Registry.js"
import type { RelayService } from "../RelayService.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import type { Listener, SocketService } from "../SocketService.js"
import * as Accept from "./accept.js"
import * as HandOff from "./handOff.js"
import * as Proxy from "./proxy.js"

/** Serves a service on listeners already open, forever, in the mode its config asks for. */
export const serve = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>
): Effect.Effect<never, never, SocketService | ProcessService | RelayService | Registry | Budget | AppLogs | AppNotify> => {
  const mode = config.mode
  switch (mode._tag) {
    case "HandOff":
      return HandOff.serve(config, listeners)
    case "Proxy":
      return Proxy.serve(config, listeners, mode)
    case "Accept":
      return Accept.serve(config, listeners, mode)
  }
}
