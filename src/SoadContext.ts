/**
 * Every service soad's lifecycles need, as one layer: the live SocketService (listeners over the addon),
 * ProcessService (apps, their cgroups and the guard), RelayService (proxy mode) and AppNotify (`--ready notify`'s
 * sockets), and the defaults of the
 * rest (`defaults`): a Registry, an unlimited Budget, and AppLogs that leave each app soad's own stdout and stderr.
 * Provide it to run `Activator.start` or `Services.layer` for real; tests provide fakes of the same tags instead.
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as AppLogs from "./AppLogs.js"
import * as AppNotify from "./AppNotify.js"
import * as Budget from "./Budget.js"
import * as ProcessService from "./ProcessService.js"
import * as Registry from "./Registry.js"
import * as RelayService from "./RelayService.js"
import * as SocketService from "./SocketService.js"

/** What a service needs beyond the OS: where it registers, the budget its apps start under, where their output goes. */
export type Defaults = Registry.Registry | Budget.Budget | AppLogs.AppLogs

/** The services in the context. */
export type SoadContext =
  | SocketService.SocketService
  | ProcessService.ProcessService
  | RelayService.RelayService
  | AppNotify.AppNotify
  | Defaults

/**
 * The neutral ones, which change nothing a service does: an empty Registry (`Registry.layer`), no budget
 * (`Budget.layerUnlimited`: the cold path may arm), and no capture of the apps' output (`AppLogs.layerInherit`:
 * `soad logs` is refused). Provide another of any of them closer to the services to replace it.
 */
export const defaults: Layer.Layer<Defaults> = Layer.mergeAll(Registry.layer, Budget.layerUnlimited, AppLogs.layerInherit)

/** The live services, together, with the defaults. */
export const layer: Layer.Layer<SoadContext> = Layer.mergeAll(
  SocketService.layer,
  ProcessService.layer,
  RelayService.layer,
  AppNotify.layer,
  defaults
)
