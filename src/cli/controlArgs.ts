/**
 * The command lines of the light path: `soad status|wake|start|sleep|stop|restart|reload|logs …`, `soad --version`
 * and `soad [VERB] --help`, recognised without @effect/cli. Anything else, or anything this does not know (a flag of
 * a run before the verb, a repeated flag, a bad `--name` or `-n`, a missing NAME, `--`), is left to the full
 * command tree (cli/command.ts), which says what is wrong in today's words and exit codes: this recogniser only
 * accepts lines the tree accepts the same way.
 *
 * @internal
 */
import { instanceName } from "../observe/controlPaths.js"

/** Which soad a control command talks to: `--control PATH`, `--name NAME` or `-c FILE`; none: the one running. */
export interface Which {
  readonly control?: string
  readonly name?: string
  readonly config?: string
}

/** A control command, parsed. `typed` is the verb as given (`start` for `wake`, `stop` for `sleep`). */
export type ControlCommand =
  | {
    readonly verb: "status"
    readonly json: boolean
    readonly all: boolean
    readonly patterns: ReadonlyArray<string>
    readonly which: Which
  }
  | {
    readonly verb: "wake" | "sleep" | "restart"
    readonly typed: string
    readonly service: string
    readonly which: Which
  }
  | { readonly verb: "reload"; readonly which: Which }
  | {
    readonly verb: "logs"
    readonly service: string | undefined
    readonly lines: number
    readonly follow: boolean
    readonly which: Which
  }

/** What a command line is, for the light path. */
export type Recognized =
  | { readonly _tag: "Control"; readonly command: ControlCommand }
  | { readonly _tag: "Version" }
  /** `topic`: "" for soad's own help, else the subcommand's. */
  | { readonly _tag: "Help"; readonly topic: string }
  /** A control verb given what looks like an app's command (the user forgot `--`): a usage error, exit 2. */
  | { readonly _tag: "Refused"; readonly message: string }
  /** Not for the light path: the full command tree parses it. */
  | { readonly _tag: "Full" }

/** The verbs the light path runs, each with the request verb it sends. */
export const verbs: Readonly<Record<string, "status" | "wake" | "sleep" | "restart" | "reload" | "logs">> = {
  status: "status",
  wake: "wake",
  start: "wake",
  sleep: "sleep",
  stop: "sleep",
  restart: "restart",
  reload: "reload",
  logs: "logs"
}

/** How many lines `soad logs` prints without -n. */
export const defaultLines = 10

/** Subcommands whose `--help` the light path prints (from the help baked in at build time). */
export const helpTopics: ReadonlyArray<string> = ["check", ...Object.keys(verbs)]

const full: Recognized = { _tag: "Full" }

/** The flags that pick a soad, by every name they have, with the key they set. */
const whichFlags: Readonly<Record<string, keyof Which>> = {
  "--control": "control",
  "--name": "name",
  "-c": "config",
  "--config": "config"
}

/** The line's own words, `--flag=value` split as the full tree splits it (cli/command.ts splitArgv). */
const words = (argv: ReadonlyArray<string>): ReadonlyArray<string> =>
  argv.flatMap((arg) => {
    const long = /^(--[a-z][a-z-]*)=(.*)$/s.exec(arg)
    return long === null ? [arg] : [long[1]!, long[2]!]
  })

/**
 * How an app's command given without `--` would be run: `soad -s PATH -- sleep 30`, for the hint a control verb
 * followed by such a line gets.
 */
export const asAppHint = (line: ReadonlyArray<string>): string =>
  `to run '${line.join(" ")}' as the app, give it after --, e.g. soad -s PATH -- ${line.join(" ")}`

/**
 * Whether a verb's NAME looks like the argument of an app's command rather than a service (`sleep 30`, `stop 5m`):
 * it starts with a digit. Asked only when no service has that name.
 */
export const looksLikeArgument = (name: string): boolean => /^[0-9]/.test(name)

/** Recognises a command line (argv without node and the script) for the light path. */
export const recognize = (argv: ReadonlyArray<string>): Recognized => {
  if (argv.includes("--")) return full
  if (argv.length === 1 && argv[0] === "--version") return { _tag: "Version" }
  if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) return { _tag: "Help", topic: "" }
  if (argv.length === 2 && helpTopics.includes(argv[0]!) && (argv[1] === "--help" || argv[1] === "-h")) {
    return { _tag: "Help", topic: argv[0]! }
  }
  const line = words(argv)
  const before: { -readonly [K in keyof Which]?: string } = {}
  const own: { -readonly [K in keyof Which]?: string } = {}
  /** Takes a flag that picks a soad at `i` into `into`; false if it is not one, or given twice, or has no value. */
  const takeWhich = (into: typeof own, i: number): boolean => {
    const key = whichFlags[line[i]!]
    const value = line[i + 1]
    if (key === undefined || value === undefined || into[key] !== undefined) return false
    if (key === "name" && !instanceName.test(value)) return false
    into[key] = value
    return true
  }
  let at = 0
  while (at < line.length && line[at]!.startsWith("-")) {
    if (!takeWhich(before, at)) return full
    at += 2
  }
  const typed = line[at]
  const verb = typed === undefined ? undefined : verbs[typed]
  if (typed === undefined || verb === undefined) return full
  const positional: Array<string> = []
  const flags = new Set<string>()
  let lines: number | undefined
  for (let i = at + 1; i < line.length; i++) {
    const word = line[i]!
    if (!word.startsWith("-") || word === "-") {
      positional.push(word)
      continue
    }
    if (whichFlags[word] !== undefined) {
      if (!takeWhich(own, i)) return full
      i++
      continue
    }
    const switches = verb === "status" ? ["--json", "--all"] : verb === "logs" ? ["-f", "--follow"] : []
    if (switches.includes(word)) {
      const canonical = word === "-f" ? "--follow" : word
      if (flags.has(canonical)) return full
      flags.add(canonical)
      continue
    }
    if (verb === "logs" && (word === "-n" || word === "--lines") && lines === undefined) {
      const value = line[i + 1]
      if (value === undefined || !/^\d{1,9}$/.test(value)) return full
      lines = Number(value)
      i++
      continue
    }
    return full
  }
  const which: Which = { ...before, ...own }
  switch (verb) {
    case "status":
      return {
        _tag: "Control",
        command: { verb, json: flags.has("--json"), all: flags.has("--all"), patterns: positional, which }
      }
    case "reload":
      return positional.length === 0 ? { _tag: "Control", command: { verb, which } } : full
    case "logs":
      return positional.length <= 1
        ? {
          _tag: "Control",
          command: { verb, service: positional[0], lines: lines ?? defaultLines, follow: flags.has("--follow"), which }
        }
        : full
    default:
      if (positional.length === 0) return full // the tree says which argument is missing
      if (positional.length > 1) {
        return {
          _tag: "Refused",
          message: `'${[typed, ...positional].join(" ")}' is not a soad command (soad ${typed} takes one NAME): ` +
            asAppHint([typed, ...positional])
        }
      }
      return { _tag: "Control", command: { verb, typed, service: positional[0]!, which } }
  }
}
