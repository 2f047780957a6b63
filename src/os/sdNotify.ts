/**
 * sd_notify's datagram: one message to the socket systemd gave soad in NOTIFY_SOCKET (observe/systemd.ts says
 * what and when).
 *
 * @internal
 */
import { native } from "./native.js"

/** Sends `message` in one datagram to the notify socket at `path` ("@name": abstract); throws if it cannot. */
export const send = (path: string, message: string): void => native().notify(path, message)
