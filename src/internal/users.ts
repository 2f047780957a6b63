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
