/**
 * Loads a CommonJS file with V8's code cache: the bytecode V8 compiled for it, kept beside it in a file. A start
 * that finds a cache V8 accepts skips parsing and compiling what it ran the last time (soad's run: about 40 % of
 * its start-up, `npm run bench`); one that finds none, or one V8 refuses (another node, other V8 flags: V8 checks
 * its version and flags, and compiles the source as usual), makes a new one when `save` is called, once soad has
 * started (its bytecode then holds every function the start ran). A cache is written aside and renamed into
 * place, so a start never reads half of one; where it cannot be written (an install soad's user may not write to),
 * soad starts without it.
 *
 * The cache's name says what it was made from: the file's own content hash (given by the build: V8 checks only a
 * source's length, so a cache must never meet another source of the same length), node's version and the V8
 * flags (`process.execArgv`), each combination its own file.
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

/** FNV-1a, 32 bits, in hex: a short name for the flags (node:crypto would cost soad about 1 MB to keep). */
const fnv = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0
  return hash.toString(16).padStart(8, "0")
}

/** The cache's path for `file` (of content hash `hash`) under this node and its flags. */
export const cachePath = (file: string, hash: string): string =>
  `${file}.${hash}.${process.version}-${process.arch}-${fnv(process.execArgv.join(" "))}.cache`

/** Node's CommonJS wrapper (Module.wrap's), written out: node:module would bring Node's ES module loader. */
const wrapperHead = "(function (exports, require, module, __filename, __dirname) { "
const wrapperTail = "\n});"

/** A loaded file: its exports, whether V8 took its cache, and how to save one. */
export interface Loaded {
  readonly exports: unknown
  /** "used": V8 took the cache; "none": there was none; "refused": V8 refused it. */
  readonly cache: "used" | "none" | "refused"
  /** Writes a cache of what has been compiled so far, unless V8 took the one there; never throws. */
  readonly save: () => void
}

/**
 * Loads the CommonJS `file` (content hash `hash`) as `require` would, with its cache when `useCache`. (node:vm is
 * imported here, when a run needs it, not by every control command.)
 */
export const load = async (file: string, hash: string, useCache = true): Promise<Loaded> => {
  const Vm = await import("node:vm")
  const { createRequire } = await import("node:module") // in the bundle: bin.cjs's own require (cli/bundle.mjs)
  const source = Fs.readFileSync(file, "utf8")
  const cacheFile = cachePath(file, hash)
  let cachedData: Buffer | undefined
  if (useCache) {
    try {
      cachedData = Fs.readFileSync(cacheFile)
    } catch {
      // none yet
    }
  }
  const script = new Vm.Script(wrapperHead + source + wrapperTail, { filename: file, ...(cachedData === undefined ? {} : { cachedData }) })
  const module = { exports: {} as unknown }
  const wrapper = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: { exports: unknown },
    filename: string,
    dirname: string
  ) => void
  wrapper(module.exports, createRequire(file), module, file, Path.dirname(file))
  const cache = cachedData === undefined ? "none" : script.cachedDataRejected === true ? "refused" : "used"
  return {
    exports: module.exports,
    cache,
    save: () => {
      if (!useCache || cache === "used") return
      const aside = `${cacheFile}.${process.pid}`
      try {
        Fs.writeFileSync(aside, script.createCachedData())
        Fs.renameSync(aside, cacheFile)
      } catch {
        // not writable here: soad starts without a cache
        try {
          Fs.rmSync(aside, { force: true })
        } catch {
          // nothing was written
        }
      }
    }
  }
}
