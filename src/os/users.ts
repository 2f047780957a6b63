/**
 * Users and groups by name or number, through the native binding (Node has no getpwnam): the resolver the
 * command line and the config file share. Input is checked by config/ids.ts first.
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Ids from "../config/ids.js"
import { native } from "./native.js"

/** The user and groups an app runs as (soad must be root). Ids are whole numbers 0..4294967294. */
export interface RunAs {
  readonly uid: number
  readonly gid: number
  /** Supplementary groups. */
  readonly groups: ReadonlyArray<number>
  /** From the passwd entry, for the app's USER/LOGNAME, HOME and SHELL; absent for a bare uid. */
  readonly name?: string | undefined
  readonly home?: string | undefined
  readonly shell?: string | undefined
}

/** Name → id lookups (the live ones, `resolver` below, use getpwnam/getgrnam). */
export interface Resolver {
  /** A user by name or uid (checked by config/ids.ts); undefined if unknown or not a valid id. */
  readonly user: (nameOrId: string | number) => RunAs | undefined
  readonly gid: (nameOrId: string | number) => number | undefined
  /** soad runs as root (may set users and groups). */
  readonly root: boolean
}

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
  // A getter: read when asked, not when this module is evaluated (the startup snapshot evaluates it at build time).
  get root() {
    return process.getuid?.() === 0
  }
}
