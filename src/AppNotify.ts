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
import { live } from "./os/notifySockets.js"

export { NotifyError } from "./os/notifyTypes.js"
export type { AppNotifyApi, NotifyMessage, NotifySocket } from "./os/notifyTypes.js"

/** The live notify sockets, over the addon. */
export { live } from "./os/notifySockets.js"

/** The notify sockets runs use: the live ones unless a test provides others. */
export class AppNotify extends Context.Reference<AppNotify>()("soad/AppNotify", { defaultValue: () => live }) {}
