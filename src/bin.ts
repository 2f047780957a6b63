#!/usr/bin/env node
/**
 * The `soad` command. Control commands, `--version` and help take the light path (cli/light.ts: no Effect, no
 * command tree, answered in about Node's own start-up); anything else, a run above all, imports the full command
 * tree (cli/main.ts), which esbuild puts in a chunk of its own that only such lines load.
 */
import * as Fs from "node:fs"
import * as Light from "./cli/light.js"

// soad is `soad` in ps, top, pidof and pgrep, not `node`: the command line shows as `soad ARGS…`, and the process
// name (what top, pgrep and pidof read; the title sets it to 15 bytes of the whole line) as `soad` alone.
process.title = ["soad", ...process.argv.slice(2)].join(" ")
try {
  Fs.writeFileSync("/proc/self/comm", "soad")
} catch {
  // not Linux: the title is all there is
}

const args = process.argv.slice(2)
// `soad status | head -1`: a reader that goes away ends the output, not with an unhandled EPIPE.
process.stdout.on("error", () => {})
const interrupted = new AbortController()
const interrupt = () => interrupted.abort()
process.once("SIGINT", interrupt)
process.once("SIGTERM", interrupt)
const code = await Light.main(args, { out: process.stdout, err: process.stderr, env: process.env, signal: interrupted.signal })
process.off("SIGINT", interrupt)
process.off("SIGTERM", interrupt)
if (code !== undefined) process.exitCode = code
else (await import("./cli/main.js")).main(args)
