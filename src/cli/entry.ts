/**
 * What the `soad` command does with its command line, however it was loaded: as an ES module (bin.ts) or restored
 * from the startup snapshot (cli/snapshot.ts). Control commands, `--version` and help take the light path
 * (cli/light.ts: no Effect, no command tree); anything else, a run above all, goes the full way (cli/main.ts),
 * which `full` gives: bin.ts imports it only then, the snapshot holds it already.
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as Light from "./light.js"

/** Runs soad on `process.argv`; `full` loads the full way. */
export const run = async (full: () => Promise<{ readonly main: (args: ReadonlyArray<string>) => void }>): Promise<void> => {
  const args = process.argv.slice(2)
  // soad is `soad` in ps, top, pidof and pgrep, not `node`: the command line shows as `soad ARGS…`, and the process
  // name (what top, pgrep and pidof read; the title sets it to 15 bytes of the whole line) as `soad` alone.
  process.title = ["soad", ...args].join(" ")
  try {
    Fs.writeFileSync("/proc/self/comm", "soad")
  } catch {
    // not Linux: the title is all there is
  }
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
  else (await full()).main(args)
}
