// Types of snapshotAudit.mjs (a build script, run by node without compiling), for the tests that call it.
import type * as esbuild from "esbuild"

/** A read of the process made while a module was evaluated, with the module that made it. */
export interface Read {
  readonly read: string
  readonly module: string
  readonly frame: string
}

/** What module evaluation may read, by module, with why a soad restored from the snapshot is right all the same. */
export interface Allowed {
  readonly module: string
  readonly reads: ReadonlyArray<string> | "any"
  readonly why: string
}

export const banner: string
export const footer: string
export const allowed: ReadonlyArray<Allowed>
export const audit: (
  builder: typeof esbuild,
  options: esbuild.BuildOptions,
  dist: string,
  work: string,
  allow?: ReadonlyArray<Allowed>
) => Promise<ReadonlyArray<Read>>
