/**
 * Users and groups by name or number, through the native binding (Node has no getpwnam): the resolver the
 * command line and the config file share.
 *
 * @internal
 */
import type { Resolver } from "../ConfigFile.js"
import { native } from "./native.js"

const numeric = (nameOrId: string | number): number | undefined =>
  typeof nameOrId === "number" ? nameOrId : /^\d+$/.test(nameOrId) ? Number(nameOrId) : undefined

/** Users with their primary and supplementary groups; a uid without a passwd entry stands for itself. */
export const resolver: Resolver = {
  user: (nameOrId) => {
    const id = numeric(nameOrId)
    const found = native().lookupUser(id ?? nameOrId)
    if (found !== null) return { uid: found.uid, gid: found.gid, groups: found.groups }
    return id !== undefined ? { uid: id, gid: id, groups: [id] } : undefined
  },
  gid: (nameOrId) => numeric(nameOrId) ?? native().lookupGroup(String(nameOrId)) ?? undefined,
  root: process.getuid?.() === 0
}
