#!/usr/bin/env node
/**
 * The `soad` command. Control commands, `--version` and help take the light path (cli/light.ts: no Effect, no
 * command tree, answered in about Node's own start-up); anything else, a run above all, loads the full command
 * tree (cli/main.ts). The build makes this file dist/bin.cjs and the tree a CommonJS file of its own
 * (dist/program.cjs, cli/program.ts), loaded with V8's code cache (cli/codeCache.ts) unless SOAD_CODE_CACHE=0: no
 * ES module loader, which costs start-up and memory. It runs only as built (tsc's dist/bin.js is removed).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Light from "./cli/light.js"
import { stdout } from "./cli/stdout.js"

/** dist/program.cjs's content hash, defined by the build (cli/bundle.mjs). */
declare const SOAD_PROGRAM_HASH: string
/** This file's directory, defined by the build (dist/bin.cjs: its __dirname). */
declare const SOAD_DIST: string

/**
 * Runs `load` with two of Node's lazy globals hidden, each read once by Effect when its module is evaluated, and
 * each costly to make for a sleeping soad that never uses it (`npm run bench`, README "Figures"):
 * - globalThis.performance, for its clock's time origin (without it: Date.now()'s, to the millisecond; durations
 *   still come from process.hrtime): it loads Node's perf_hooks, and soad measures with process.hrtime (os/procfs.ts
 *   realNow);
 * - process.stdout, to know whether its pretty logger (which soad does not use) writes to a terminal: under systemd
 *   it is the journal's socket, made as a net.Socket with node:net and Node's streams (soad writes to stdout only
 *   what a subcommand prints).
 */
const hiddenWhileLoading = async <A>(load: () => Promise<A>): Promise<A> => {
  const hidden = [[globalThis, "performance"], [process, "stdout"]] as const
  const descriptors = hidden.map(([owner, name]) => Object.getOwnPropertyDescriptor(owner, name))
  hidden.forEach(([owner, name], i) => {
    if (descriptors[i]?.configurable === true) Object.defineProperty(owner, name, { configurable: true, writable: true, value: undefined })
  })
  try {
    return await load()
  } finally {
    hidden.forEach(([owner, name], i) => {
      const descriptor = descriptors[i]
      if (descriptor?.configurable === true) Object.defineProperty(owner, name, descriptor)
    })
  }
}

/** The full way: the build's program.cjs, with its code cache. */
const full = async (args: ReadonlyArray<string>): Promise<void> => {
  const CodeCache = await import("./cli/codeCache.js")
  const program = await hiddenWhileLoading(() =>
    CodeCache.load(Path.join(SOAD_DIST, "program.cjs"), SOAD_PROGRAM_HASH, process.env["SOAD_CODE_CACHE"] !== "0")
  )
  ;(program.exports as typeof import("./cli/program.js")).main(args, program.save)
}

const run = async (): Promise<void> => {
  // soad is `soad` in ps, top, pidof and pgrep, not `node`: the command line shows as `soad ARGS…`, and the process
  // name (what top, pgrep and pidof read; the title sets it to 15 bytes of the whole line) as `soad` alone.
  process.title = ["soad", ...process.argv.slice(2)].join(" ")
  try {
    Fs.writeFileSync("/proc/self/comm", "soad")
  } catch {
    // not Linux: the title is all there is
  }
  const args = process.argv.slice(2)
  // Made only for a control command that reads it: Node's AbortController (internal/abort_controller, event
  // targets) is some 15 KB of source compiled that a run would keep.
  let interrupted: AbortController | undefined
  let interruptedBefore = false
  const interrupt = () => {
    interruptedBefore = true
    interrupted?.abort()
  }
  process.once("SIGINT", interrupt)
  process.once("SIGTERM", interrupt)
  // process.stdout and process.stderr are made when first read: a run must not make stdout here, which for a pipe
  // or a terminal loads node:net and its streams (a run writes to stderr alone).
  const code = await Light.main(args, {
    get out() {
      return stdout()
    },
    get err() {
      return process.stderr
    },
    env: process.env,
    get signal() {
      if (interrupted === undefined) {
        interrupted = new AbortController()
        if (interruptedBefore) interrupted.abort()
      }
      return interrupted.signal
    }
  })
  process.off("SIGINT", interrupt)
  process.off("SIGTERM", interrupt)
  if (code !== undefined) process.exitCode = code
  else await full(args)
}

run().catch((error: unknown) => {
  process.stderr.write(`soad: internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exitCode = 70
})
