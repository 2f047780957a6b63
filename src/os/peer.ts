/**
 * Who is at the other end of a UNIX connection node:net accepted, as the kernel says (SO_PEERCRED): the control
 * socket checks each peer with it (observe/control.ts).
 *
 * @internal
 */
import type * as Net from "node:net"
import { native } from "./native.js"

/** Who is at the other end of a control connection (SO_PEERCRED). */
export interface PeerCredentials {
  readonly pid: number
  readonly uid: number
  readonly gid: number
}

const fdOf = (socket: Net.Socket): number | undefined =>
  (socket as unknown as { readonly _handle?: { readonly fd?: number } })._handle?.fd

/** The peer as the kernel says (SO_PEERCRED on the accepted socket); undefined when that cannot be read. */
export const credentials = (socket: Net.Socket): PeerCredentials | undefined => {
  const fd = fdOf(socket)
  if (fd === undefined) return undefined
  try {
    return native().peerCredentials(fd)
  } catch {
    return undefined
  }
}
