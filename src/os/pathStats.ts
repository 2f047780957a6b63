/**
 * lstat of many paths at once, for `soad status` (observe/socketFiles.ts): one call into the addon for all of them,
 * where fs.lstatSync costs some 6 us a path in soad's V8 without a JIT (6 ms of a status of 1,000 services,
 * `npm run bench`). Without the addon loaded (a program on soad/testing's fakes never loads it), fs.lstatSync.
 *
 * @internal
 */
import * as Fs from "node:fs"
import { nativeIfLoaded } from "./native.js"

/** What lstat said of a path: its mode, owner and identity; undefined when it failed (no such file, …). */
export interface PathStat {
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly dev: number
  readonly ino: number
}

const one = (path: string): PathStat | undefined => {
  try {
    const { dev, gid, ino, mode, uid } = Fs.lstatSync(path)
    return { mode, uid, gid, dev, ino }
  } catch {
    return undefined
  }
}

/** lstat of each of `paths`, in order. */
export const lstatAll = (paths: ReadonlyArray<string>): ReadonlyArray<PathStat | undefined> => {
  const n = nativeIfLoaded()
  if (n === undefined || paths.length === 0) return paths.map(one)
  const rows = n.lstatPaths(paths)
  return paths.map((_, i) => {
    const at = i * 6
    return rows[at] !== 0 ? undefined : { mode: rows[at + 1]!, uid: rows[at + 2]!, gid: rows[at + 3]!, dev: rows[at + 4]!, ino: rows[at + 5]! }
  })
}
