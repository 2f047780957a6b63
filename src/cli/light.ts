/**
 * The light path: what `soad` does without loading the command tree or Effect. Control commands, `--version` and
 * help are what people type most, and evaluating the bundle of Effect, @effect/cli and Schema cost ~100 ms before
 * any of them could answer (measured, `BENCH_ONLY=control npm run bench`); here they answer in about what Node
 * itself takes to start. The help and version texts are the command tree's own, rendered at build time
 * (cli/helpTexts.ts) into dist/help.json beside the bundle, and read only by help and `--version`: in the bundle
 * they would be some 55 KB of source and strings that every soad keeps. Without them (from the sources, or a
 * dist/ without the file), help goes the full way.
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { recognize } from "./controlArgs.js"
import * as ControlVerbs from "./controlVerbs.js"

/** The bundle's directory (dist/), defined by the build; undefined from the sources. */
declare const SOAD_DIST: string | undefined

/** The texts rendered at build time, keyed `help`, `help TOPIC`, `version`, if this is the built bundle. */
const baked = (): Readonly<Record<string, string>> | undefined => {
  if (typeof SOAD_DIST === "undefined") return undefined
  try {
    return JSON.parse(Fs.readFileSync(Path.join(SOAD_DIST, "help.json"), "utf8")) as Readonly<Record<string, string>>
  } catch {
    return undefined // none here: the command tree renders them
  }
}

/** ANSI colour and style sequences, which help has only on a terminal (as cli/command.ts prints it). */
// eslint-disable-next-line no-control-regex
const ansi = /\x1b\[[0-9;]*m/g

/** Whether to print plain text: stdout is no terminal, or NO_COLOR is set to something (no-color.org). */
const plainOutput = (out: NodeJS.WritableStream, env: NodeJS.ProcessEnv): boolean =>
  (out as { readonly isTTY?: boolean }).isTTY !== true || (env.NO_COLOR ?? "") !== ""

/**
 * Runs `argv` (without node and the script) if it is for the light path: its exit code, or undefined when the full
 * command tree must run it. `texts` gives the baked help and version texts (the bundle's by default), asked for
 * only by help and `--version`: a run does not make their strings.
 */
export const main = async (
  argv: ReadonlyArray<string>,
  io: ControlVerbs.Io,
  texts: () => Readonly<Record<string, string>> | undefined = baked
): Promise<number | undefined> => {
  const line = recognize(argv)
  switch (line._tag) {
    case "Full":
      return undefined
    case "Refused":
      io.err.write(`soad: ${line.message} (see soad --help)\n`)
      return 2
    case "Version":
    case "Help": {
      const text = texts()?.[line._tag === "Version" ? "version" : `help${line.topic === "" ? "" : ` ${line.topic}`}`]
      if (text === undefined) return undefined
      io.out.write(`${plainOutput(io.out, io.env) ? text.replace(ansi, "") : text}\n`)
      return 0
    }
    case "Control":
      return ControlVerbs.run(line.command, io)
  }
}
