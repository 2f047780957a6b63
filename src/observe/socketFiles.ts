/**
 * A service's UNIX socket files as they are now, for `soad status`: each path's mode and owner read (lstat, every
 * service's at once: os/pathStats.ts) when asked, not what the config said, so what a reverse proxy's user meets is what the operator sees: a file
 * chmod'ed by hand, a socket systemd made (`-l fd:NAME`), a file removed or replaced since.
 *
 * @internal
 */
import * as Fs from "node:fs"
import type { PathStat } from "../os/pathStats.js"
import type { SocketFileReport } from "./controlProtocol.js"
import type { Listener } from "../SocketService.js"

/** Names of uids and gids, for one status request. */
export interface IdNames {
  readonly user: (uid: number) => string | undefined
  readonly group: (gid: number) => string | undefined
}

/** `name:…:id:…` lines of /etc/passwd or /etc/group: id → the first name with it. */
const idFile = (path: string): ReadonlyMap<number, string> => {
  const names = new Map<number, string>()
  let text = ""
  try {
    text = Fs.readFileSync(path, "utf8")
  } catch {
    return names
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":", 3)
    const id = Number(fields[2])
    if (fields.length === 3 && fields[2] !== "" && Number.isSafeInteger(id) && !names.has(id)) names.set(id, fields[0]!)
  }
  return names
}

/**
 * Names from /etc/passwd and /etc/group, each file read at its first use: the files, not NSS, so a status request
 * never waits on a directory server (users only a directory knows show as numbers).
 */
export const idNames = (passwd = "/etc/passwd", groupFile = "/etc/group"): IdNames => {
  let users: ReadonlyMap<number, string> | undefined
  let groups: ReadonlyMap<number, string> | undefined
  return {
    user: (uid) => (users ??= idFile(passwd)).get(uid),
    group: (gid) => (groups ??= idFile(groupFile)).get(gid)
  }
}

/** The file of a listener on a UNIX path (made by soad, or inherited and bound to a path); undefined: none. */
const pathOf = (listener: Listener): string | undefined => {
  if (listener.address._tag === "Unix") return listener.address.path
  const local = listener.local
  return local?.family === "unix" && local.path.startsWith("/") ? local.path : undefined
}

/** The paths of these listeners' UNIX socket files, to be read at once (os/pathStats.ts's lstatAll). */
export const socketPaths = (listeners: ReadonlyArray<Listener>): ReadonlyArray<string> =>
  listeners.flatMap((listener) => pathOf(listener) ?? [])

/** The type bits of a mode, and a socket's. */
const typeBits = 0o170000
const socketType = 0o140000

/**
 * Each UNIX socket file of these listeners: its mode and owner now (`stats`: lstat of every path `socketPaths`
 * gave, read at the request), or why there is none to show.
 */
export const socketFiles = (
  listeners: ReadonlyArray<Listener>,
  names: IdNames,
  stats: ReadonlyMap<string, PathStat | undefined>
): ReadonlyArray<SocketFileReport> =>
  listeners.flatMap((listener): ReadonlyArray<SocketFileReport> => {
    const path = pathOf(listener)
    if (path === undefined) return []
    const stat = stats.get(path)
    if (stat === undefined) return [{ path, problem: "gone" }]
    const file = listener.file
    if ((stat.mode & typeBits) !== socketType || (file !== undefined && (stat.ino !== file.ino || stat.dev !== file.dev))) {
      return [{ path, problem: "replaced" }]
    }
    const user = names.user(stat.uid)
    const group = names.group(stat.gid)
    return [{
      path,
      mode: (stat.mode & 0o7777).toString(8).padStart(4, "0"),
      uid: stat.uid,
      gid: stat.gid,
      ...(user === undefined ? {} : { user }),
      ...(group === undefined ? {} : { group })
    }]
  })
