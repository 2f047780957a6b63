/**
 * Every live service soad's lifecycles need, as one layer: SocketService (listeners over the addon),
 * ProcessService (apps, their cgroups and the guard) and RelayService (proxy mode). Provide it to run
 * `Activator.start` or `Services.layer` for real; tests provide fakes of the same tags instead.
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as ProcessService from "./ProcessService.js"
import * as RelayService from "./RelayService.js"
import * as SocketService from "./SocketService.js"

/** The services in the context. */
export type SoadContext = SocketService.SocketService | ProcessService.ProcessService | RelayService.RelayService

/** The live services, together. */
export const layer: Layer.Layer<SoadContext> = Layer.mergeAll(SocketService.layer, ProcessService.layer, RelayService.layer)
