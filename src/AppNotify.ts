/**
 * An app's own NOTIFY_SOCKET for one run (`--ready notify`): a datagram socket soad binds in the abstract namespace
 * (`@soad/<soad's pid>/<service>/<n>-<random>`, never soad's own NOTIFY_SOCKET), read with each sender's credentials
 * (SO_PASSCRED: the kernel, not the sender, fills in pid and uid), and which process session a sender is in, so the
 * run accepts datagrams from the app's processes only. A service like the OS's others: `layer` is the live one
 * (in `SoadContext.layer`), the test World gives a fake, so nothing reaches the addon unless asked to.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import { live } from "./os/notifySockets.js"

export { NotifyError } from "./os/notifyTypes.js"
export type { AppNotifyApi, NotifyMessage, NotifySocket } from "./os/notifyTypes.js"
import type { AppNotifyApi } from "./os/notifyTypes.js"

/** The live notify sockets, over the addon. */
export { live } from "./os/notifySockets.js"

/** The notify sockets runs use. */
export class AppNotify extends Context.Tag("soad/AppNotify")<AppNotify, AppNotifyApi>() {}

/** The live notify sockets as a layer. */
export const layer: Layer.Layer<AppNotify> = Layer.succeed(AppNotify, live)
