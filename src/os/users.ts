/**
 * Users and groups by name or number, through the native binding (Node has no getpwnam): the resolver the
 * command line and the config file share. Input is checked by config/ids.ts first.
 *
 * @internal
 */
import * as Either from "effect/Either"
import type { Resolver } from "../config/serviceInput.js"
import * as Ids from "../config/ids.js"
import { native } from "./native.js"

/** Users with their primary and supplementary groups; a uid without a passwd entry stands for itself. */
export const resolver: Resolver = {
  user: (nameOrId) => {
    const ref = Ids.parse(nameOrId)
    if (Either.isLeft(ref)) return undefined
    const found = native().lookupUser(ref.right)
    if (found !== null) {
      return { uid: found.uid, gid: found.gid, groups: found.groups, name: found.name, home: found.home, shell: found.shell }
    }
    return typeof ref.right === "number" ? { uid: ref.right, gid: ref.right, groups: [ref.right] } : undefined
  },
  gid: (nameOrId) => {
    const ref = Ids.parse(nameOrId)
    if (Either.isLeft(ref)) return undefined
    return typeof ref.right === "number" ? ref.right : native().lookupGroup(ref.right) ?? undefined
  },
  root: process.getuid?.() === 0
}
