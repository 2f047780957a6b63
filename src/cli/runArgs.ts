/**
 * The flags of a run, and the light run path's parser of them: `soad -s PATH -t 240 -- gunicorn app:app` and
 * `soad -c FILE`, the lines a service manager starts soad with, parsed without @effect/cli. Its command tree
 * (cli/command.ts) costs a run ~7 ms to build and parse and ~2 MB of heap for as long as soad runs, which a soad
 * that sleeps all day should not keep (`npm run bench`, README "Figures"). Anything this does not know, or any
 * line the tree might read otherwise (a positional word, a repeated flag, a value that starts with `-` or names a
 * subcommand, a choice or a --metrics or --name the tree would refuse, help and the built-ins), is left to the tree,
 * which says what is wrong in its words; `recognize` accepts only lines the tree parses into the same `Parsed`
 * (test/unit/runArgs.test.ts checks it against the tree, over generated lines).
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import type * as Address from "../Address.js"
import * as Fields from "../config/fields.js"
import * as Logging from "../Logging.js"
import * as ControlPaths from "../observe/controlPaths.js"
import * as ServiceConfig from "../ServiceConfig.js"

/** What a run's flags say: the command tree's parse of its root command (cli/command.ts asserts the two agree). */
export interface Parsed {
  readonly configFile: Option.Option<string>
  readonly socket: Array<string>
  readonly listen: Array<string>
  readonly upstream: Option.Option<string>
  readonly maxHeld: Option.Option<string>
  readonly waitingPage: Option.Option<string>
  readonly waitingPageFile: Option.Option<string>
  readonly accept: boolean
  readonly maxConnections: Option.Option<string>
  readonly maxConnectionsPerSource: Option.Option<string>
  readonly maxAcceptRate: Option.Option<string>
  readonly timeUntilStop: Option.Option<string>
  readonly shutdownSignal: Option.Option<string>
  readonly stopTimeout: Option.Option<string>
  readonly startTimeout: Option.Option<string>
  readonly ready: Option.Option<ServiceConfig.Ready>
  readonly idleIgnoresOpenConnections: boolean
  readonly minUptime: Option.Option<string>
  readonly maxBackoff: Option.Option<string>
  readonly startLimitBurst: Option.Option<string>
  readonly startLimitInterval: Option.Option<string>
  readonly backlog: Option.Option<string>
  readonly socketMode: Option.Option<string>
  readonly socketUser: Option.Option<string>
  readonly socketGroup: Option.Option<string>
  readonly user: Option.Option<string>
  readonly group: Option.Option<string>
  readonly logLevel: Logging.Level
  readonly logFormat: Logging.Format
  readonly metrics: Option.Option<Address.Address>
  readonly control: Option.Option<string>
  readonly instance: Option.Option<string>
  /** Words before `--` that are no flag's: the tree's; `recognize` leaves every such line to it. */
  readonly command: Array<string>
}

/** A `--name` value, as ControlPaths.instanceName allows. */
export const instanceRef: Fields.Parse<string> = (input) =>
  ControlPaths.instanceName.test(String(input))
    ? Either.right(String(input))
    : Either.left({ _tag: "Expected", expected: "letters, digits, _ . @ -, starting with a letter or digit, at most 64" })

/**
 * A config file's path as the tree takes it (@effect/cli's file option): one that does not exist (soad says so
 * when it reads it), or a regular file, through links.
 */
const configPath: Fields.Parse<string> = (input) => {
  const path = String(input)
  try {
    if (!Fs.existsSync(path) || Fs.statSync(path).isFile()) return Either.right(path)
  } catch {
    // gone between the two, or unreadable: the tree's to say
  }
  return Either.left({ _tag: "Expected", expected: "a regular file" })
}

/** How a flag is given and what it parses to. */
type Kind =
  /** Once at most, with a value: Option of it. */
  | { readonly _tag: "Text" }
  /** Any number of times, each with a value, in order. */
  | { readonly _tag: "Repeated" }
  /** Present or not, no value. */
  | { readonly _tag: "Flag" }
  /** Once at most, one of `choices`: Option of it, or `fallback` when there is one. */
  | { readonly _tag: "Choice"; readonly choices: ReadonlyArray<string>; readonly fallback?: string }
  /** Once at most, with a value `check` must take: Option of what it makes. */
  | { readonly _tag: "Checked"; readonly check: () => Fields.Parse<unknown> }

/** A run's flag: the key of Parsed it sets, its names (long first), its kind. */
interface Flag {
  readonly key: Exclude<keyof Parsed, "command">
  readonly names: ReadonlyArray<string>
  readonly kind: Kind
}

const text: Kind = { _tag: "Text" }

/** Every flag of a run, as the command tree defines it (test/unit/runArgs.test.ts compares the two). */
export const flags: ReadonlyArray<Flag> = [
  { key: "configFile", names: ["--config", "-c"], kind: { _tag: "Checked", check: () => configPath } },
  { key: "socket", names: ["--socket", "-s"], kind: { _tag: "Repeated" } },
  { key: "listen", names: ["--listen", "-l"], kind: { _tag: "Repeated" } },
  { key: "upstream", names: ["--upstream"], kind: text },
  { key: "maxHeld", names: ["--max-held"], kind: text },
  { key: "waitingPage", names: ["--waiting-page"], kind: text },
  { key: "waitingPageFile", names: ["--waiting-page-file"], kind: text },
  { key: "accept", names: ["--accept"], kind: { _tag: "Flag" } },
  { key: "maxConnections", names: ["--max-connections"], kind: text },
  { key: "maxConnectionsPerSource", names: ["--max-connections-per-source"], kind: text },
  { key: "maxAcceptRate", names: ["--max-accept-rate"], kind: text },
  { key: "timeUntilStop", names: ["--time-until-stop", "-t"], kind: text },
  { key: "shutdownSignal", names: ["--shutdown-signal", "-S"], kind: text },
  { key: "stopTimeout", names: ["--stop-timeout"], kind: text },
  { key: "startTimeout", names: ["--start-timeout"], kind: text },
  { key: "ready", names: ["--ready"], kind: { _tag: "Choice", choices: ServiceConfig.readyModes } },
  { key: "idleIgnoresOpenConnections", names: ["--idle-ignores-open-connections"], kind: { _tag: "Flag" } },
  { key: "minUptime", names: ["--min-uptime"], kind: text },
  { key: "maxBackoff", names: ["--max-backoff"], kind: text },
  { key: "startLimitBurst", names: ["--start-limit-burst"], kind: text },
  { key: "startLimitInterval", names: ["--start-limit-interval"], kind: text },
  { key: "backlog", names: ["--backlog"], kind: text },
  { key: "socketMode", names: ["--socket-mode"], kind: text },
  { key: "socketUser", names: ["--socket-user"], kind: text },
  { key: "socketGroup", names: ["--socket-group"], kind: text },
  { key: "user", names: ["--user"], kind: text },
  { key: "group", names: ["--group"], kind: text },
  { key: "logLevel", names: ["--log-level"], kind: { _tag: "Choice", choices: Logging.levels, fallback: "info" } },
  { key: "logFormat", names: ["--log-format"], kind: { _tag: "Choice", choices: Logging.formats, fallback: "text" } },
  { key: "metrics", names: ["--metrics"], kind: { _tag: "Checked", check: () => Fields.address(process.cwd()) } },
  { key: "control", names: ["--control"], kind: text },
  { key: "instance", names: ["--name"], kind: { _tag: "Checked", check: () => instanceRef } }
]

const byName: ReadonlyMap<string, Flag> = new Map(flags.flatMap((flag) => flag.names.map((name) => [name, flag] as const)))

/** Every name of a run's flags that take a value (`-t`, `--time-until-stop`, …). */
export const valueFlags: ReadonlySet<string> = new Set(
  flags.flatMap((flag) => flag.kind._tag === "Flag" ? [] : flag.names)
)

/** Short options whose value may be attached (`-t5`, `-S15`, `-s/run/a.sock`): @effect/cli wants them apart. */
const shortWithValue = new Set([...valueFlags].filter((name) => /^-[a-zA-Z]$/.test(name)).map((name) => name.slice(1)))

/**
 * Splits argv at the first `--`: what follows is the app's command, verbatim, never seen by the parser (a command
 * such as `sleep 30` would otherwise be taken for the subcommand). Before it, attached values are separated
 * (`--socket=PATH` → `--socket PATH`, which @effect/cli does only for options that are not repeated; `-t5` → `-t 5`),
 * and a leading `--log-level` moves to the end: @effect/cli's built-in `--log-level` (which no setting turns off)
 * takes the option only when it comes first, and would then drop it and any `--log-level` after `--` too.
 */
export const splitArgv = (args: ReadonlyArray<string>): {
  readonly own: ReadonlyArray<string>
  readonly command: ReadonlyArray<string> | undefined
} => {
  const dashes = args.indexOf("--")
  const own: Array<string> = []
  for (const arg of dashes >= 0 ? args.slice(0, dashes) : args) {
    const long = /^(--[a-z][a-z-]*)=(.*)$/s.exec(arg)
    const short = /^-([a-zA-Z])(.+)$/s.exec(arg)
    if (long !== null) own.push(long[1]!, long[2]!)
    else if (short !== null && shortWithValue.has(short[1]!)) own.push(`-${short[1]}`, short[2]!)
    else own.push(arg)
  }
  if (own[0] === "--log-level") own.push(...own.splice(0, 2))
  return { own, command: dashes >= 0 ? args.slice(dashes + 1) : undefined }
}

/** soad's subcommands: a word the tree may take for one, never a value here. */
const subcommands: ReadonlySet<string> = new Set(["check", "status", "wake", "start", "sleep", "stop", "restart", "reload", "logs"])

/** Whether `value` is read as itself by the tree too: not empty, no flag, no subcommand, no space around it. */
const plainValue = (value: string): boolean =>
  value !== "" && !value.startsWith("-") && !subcommands.has(value) && value.trim() === value

/** A run's line, parsed: its flags, and the app's command (after `--`; undefined without one). */
export interface RunLine {
  readonly parsed: Parsed
  readonly command: ReadonlyArray<string> | undefined
}

/** Parses a run's line (argv without node and the script), or undefined to leave it to the command tree. */
export const recognize = (args: ReadonlyArray<string>): RunLine | undefined => {
  const { own, command } = splitArgv(args)
  const given = new Map<Flag, Array<string>>()
  for (let i = 0; i < own.length; i++) {
    const flag = byName.get(own[i]!)
    if (flag === undefined) return undefined
    const values = given.get(flag) ?? []
    if (values.length > 0 && flag.kind._tag !== "Repeated") return undefined
    given.set(flag, values)
    if (flag.kind._tag === "Flag") {
      // no value: a word after it is a flag's name or the line is the tree's (`--accept yes`: @effect/cli's value)
      values.push("")
      continue
    }
    const value = own[i + 1]
    if (value === undefined || !plainValue(value)) return undefined
    values.push(value)
    i += 1
  }
  const parsed: Record<string, unknown> = { command: [] }
  for (const flag of flags) {
    const values = given.get(flag) ?? []
    const value = values[0]
    switch (flag.kind._tag) {
      case "Text":
        parsed[flag.key] = Option.fromNullable(value)
        break
      case "Repeated":
        parsed[flag.key] = values
        break
      case "Flag":
        parsed[flag.key] = value !== undefined
        break
      case "Choice": {
        if (value !== undefined && !flag.kind.choices.includes(value)) return undefined
        const chosen = value ?? flag.kind.fallback
        parsed[flag.key] = flag.kind.fallback === undefined ? Option.fromNullable(chosen) : chosen
        break
      }
      case "Checked": {
        if (value === undefined) {
          parsed[flag.key] = Option.none()
          break
        }
        const checked = flag.kind.check()(value)
        if (Either.isLeft(checked)) return undefined
        parsed[flag.key] = Option.some(checked.right)
        break
      }
    }
  }
  return { parsed: parsed as unknown as Parsed, command }
}
