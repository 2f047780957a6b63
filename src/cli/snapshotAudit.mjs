// The startup snapshot's audit (cli/bundle.mjs runs it at each build): making a snapshot evaluates every module of
// the program, so whatever a module reads of its process while it is evaluated (the environment, the user, the
// time, a random number, stdout) is the build's, frozen into every soad restored from it. The audit builds the
// snapshot once more from an unminified bundle with `banner` before it and `footer` after it, which record each such
// read with the module that made it; `unexpected` lists those not in `allowed`, and the build stops on any.
import * as Fs from "node:fs"
import * as Path from "node:path"
import { makeBlob } from "./snapshot.mjs"

/** Code run before the bundle: wraps what a module could read of its process, and records each read. */
export const banner = `;(() => {
  const out = process.env.SOAD_AUDIT_OUT
  const hadLimit = Object.prototype.hasOwnProperty.call(Error, "stackTraceLimit")
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 40
  const reads = []
  const record = (read) => reads.push({ read, stack: new Error().stack.split("\\n").slice(3).map((l) => l.trim()) })
  const undo = []
  const wrap = (object, key, label) => {
    const original = object[key]
    if (typeof original !== "function") return
    const wrapped = function (...args) { record(label); return original.apply(this, args) }
    if (typeof original.bigint === "function") wrapped.bigint = () => { record(label + ".bigint"); return original.bigint() }
    object[key] = wrapped
    undo.push(() => { object[key] = original })
  }
  const env = process.env
  process.env = new Proxy(env, {
    get: (target, key) => { if (typeof key === "string") record("process.env." + key); return target[key] },
    has: (target, key) => { record("process.env has " + String(key)); return key in target },
    ownKeys: (target) => { record("process.env's keys"); return Reflect.ownKeys(target) }
  })
  undo.push(() => { process.env = env })
  for (const key of ["getuid", "geteuid", "getgid", "getegid", "getgroups", "cwd", "hrtime", "cpuUsage", "memoryUsage", "uptime"]) wrap(process, key, "process." + key)
  wrap(Date, "now", "Date.now")
  wrap(Math, "random", "Math.random")
  wrap(performance, "now", "performance.now")
  const os = require("node:os")
  for (const key of ["hostname", "userInfo", "homedir", "tmpdir", "cpus", "totalmem", "freemem", "networkInterfaces", "loadavg"]) wrap(os, key, "os." + key)
  const crypto = require("node:crypto")
  for (const key of ["randomBytes", "randomUUID", "randomInt", "getRandomValues"]) wrap(crypto, key, "crypto." + key)
  for (const key of ["pid", "ppid", "argv", "argv0", "execArgv", "title", "stdin", "stdout", "stderr"]) {
    const descriptor = Object.getOwnPropertyDescriptor(process, key)
    if (descriptor === undefined || !descriptor.configurable) continue
    Object.defineProperty(process, key, {
      configurable: true,
      enumerable: descriptor.enumerable,
      get() { record("process." + key); return descriptor.get ? descriptor.get.call(process) : descriptor.value }
    })
    undo.push(() => Object.defineProperty(process, key, descriptor))
  }
  const RealDate = Date
  globalThis.Date = new Proxy(RealDate, {
    construct: (target, args) => { if (args.length === 0) record("new Date()"); return Reflect.construct(target, args) }
  })
  undo.push(() => { globalThis.Date = RealDate })
  globalThis.SOAD_SNAPSHOT_AUDIT = () => {
    for (const step of undo.reverse()) step()
    if (hadLimit) Error.stackTraceLimit = limit
    else delete Error.stackTraceLimit
    require("node:fs").writeFileSync(out, JSON.stringify(reads))
  }
})();
`

/** Code run after the bundle: ends the recording. */
export const footer = `globalThis.SOAD_SNAPSHOT_AUDIT();\ndelete globalThis.SOAD_SNAPSHOT_AUDIT;\n`

/**
 * What module evaluation may read, by module, with why a soad restored from the snapshot does not go wrong by it.
 * A module is a path as esbuild names it in an unminified bundle, or Node's own (node:internal/…, read "any").
 */
export const allowed = [
  {
    module: "node_modules/effect/dist/esm/internal/clock.js",
    reads: ["Date.now", "performance.now", "process.hrtime.bigint"],
    why: "the origin of Effect's default Clock: soad runs with a Clock made at run time (os/runDefaults.ts)"
  },
  {
    module: "node_modules/effect/dist/esm/internal/defaultServices.js",
    reads: ["Math.random"],
    why: "the seed of Effect's default Random: soad runs with a Random seeded at run time (os/runDefaults.ts)"
  },
  {
    module: "node_modules/effect/dist/esm/internal/logger.js",
    reads: ["process.stdout"],
    why: "whether stdout is a terminal, for Effect's pretty logger: soad writes its own lines (Logging.ts)"
  },
  {
    module: "node_modules/effect/dist/esm/Hash.js",
    reads: ["Math.random"],
    why: "the hash of an object made at build time: it has to be unique, not secret"
  },
  {
    module: "node_modules/effect/dist/esm/internal/fiberId.js",
    reads: ["Date.now"],
    why: "the start time in the id of a fiber run while modules are evaluated, for fiber dumps"
  },
  {
    module: "node_modules/effect/dist/esm/internal/fiberRuntime.js",
    reads: ["Date.now"],
    why: "the lifetime of a fiber run while modules are evaluated, for Effect's fiber metrics"
  },
  {
    module: "node:internal/",
    reads: "any",
    why: "Node's own state (its console, its warnings), which Node makes anew when it restores a snapshot"
  }
]

/**
 * The module of each line of an unminified esbuild bundle (it heads each module's code with `// path`, relative to
 * its working directory): a package's from its node_modules/ on.
 */
const modulesByLine = (bundle) => {
  const modules = []
  let current = "(the bundle's runtime)"
  for (const line of bundle.split("\n")) {
    const heading = /^\/\/ (\S+\.[cm]?[jt]sx?)$/.exec(line)
    if (heading !== null) {
      const at = heading[1].lastIndexOf("node_modules/")
      current = at < 0 ? heading[1] : heading[1].slice(at)
    }
    modules.push(current)
  }
  return modules
}

/**
 * The module that made each read: the first frame of its stack in Node's own code or in the bundle (`file`,
 * `bundle` its text, `bannerLines` the banner's lines before it).
 */
export const attribute = (reads, file, bundle, bannerLines) => {
  const modules = modulesByLine(bundle)
  return reads.map(({ read, stack }) => {
    for (const frame of stack) {
      if (/\(?node:internal\//.test(frame)) return { read, module: "node:internal/", frame }
      const at = frame.lastIndexOf(file + ":")
      if (at < 0) continue
      const line = Number(frame.slice(at + file.length + 1).split(":")[0])
      if (line <= bannerLines) continue
      return { read, module: modules[line - 1] ?? "(unknown)", frame }
    }
    return { read, module: "(unknown)", frame: stack[0] ?? "" }
  })
}

/** The attributed reads that `allowed` does not allow. */
export const unexpected = (attributed, allow = allowed) =>
  attributed.filter(({ read, module }) =>
    !allow.some((entry) => (entry.module.endsWith("/") ? module.startsWith(entry.module) : module === entry.module) &&
      (entry.reads === "any" || entry.reads.includes(read)))
  )

/**
 * Bundles `options` (esbuild's, for the snapshot's program, without an outfile) unminified with the recorder, makes
 * a snapshot of it in `work` under the flags of DIST/soad, and gives the reads that `allow` does not allow.
 */
export const audit = async (esbuild, options, dist, work, allow = allowed) => {
  const bundle = Path.join(work, "audited.cjs")
  await esbuild.build({ ...options, minify: false, outfile: bundle, banner: { js: banner }, footer: { js: footer } })
  const readsFile = Path.join(work, "reads.json")
  makeBlob(dist, bundle, Path.join(work, "audited.blob"), { ...process.env, SOAD_AUDIT_OUT: readsFile })
  const reads = JSON.parse(Fs.readFileSync(readsFile, "utf8"))
  return unexpected(attribute(reads, bundle, Fs.readFileSync(bundle, "utf8"), banner.split("\n").length), allow)
}
