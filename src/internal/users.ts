/**
 * Users and groups by name or number, through the native binding (Node has no getpwnam).
 *
 * @internal
 */
import { native } from "./native.js"

/** The uid of a user name or number, undefined if there is no such user. */
export const uidOf = (text: string): number | undefined => {
  if (/^\d+$/.test(text)) return Number(text)
  return native().lookupUser(text)?.uid
}

/** The gid of a group name or number, undefined if there is no such group. */
export const gidOf = (text: string): number | undefined => {
  if (/^\d+$/.test(text)) return Number(text)
  return native().lookupGroup(text) ?? undefined
}

/** The resolver the CLI uses. */
export const resolver = { uidOf, gidOf }

/** Name → id lookups, given to the pure parts of the CLI. */
export type Resolver = typeof resolver

/** The resolver the config file uses: users with their primary group and supplementary groups. */
export const fileResolver = {
  user: (nameOrId: string | number) => {
    const key = typeof nameOrId === "number" ? nameOrId : /^\d+$/.test(nameOrId) ? Number(nameOrId) : nameOrId
    const found = native().lookupUser(key)
    if (found !== null) return { uid: found.uid, gid: found.gid, groups: found.groups }
    return typeof key === "number" ? { uid: key, gid: key, groups: [key] } : undefined
  },
  gid: (nameOrId: string | number) =>
    typeof nameOrId === "number" || /^\d+$/.test(nameOrId) ? Number(nameOrId) : native().lookupGroup(nameOrId) ?? undefined,
  root: process.getuid?.() === 0
}
