/**
 * One parser per field that is both a flag and a config-file key, so the two cannot drift: the CLI (cli/command.ts) and the
 * config file (ConfigFile.ts) call the same function and only word the refusal their own way:
 *
 *     -t: 'abc' is not a positive number of seconds …          (a flag: what was typed, then what is expected)
 *     FILE: services.blog.time-until-stop: expected …, found "abc"   (a key: the field, expected, found)
 *
 * Each parser takes what either side has (the flag's text, or the TOML value: a string or a number).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Address from "../Address.js"
import * as Signal from "../Signal.js"
import * as Durations from "./durations.js"
import * as WaitingPage from "../modes/waitingPage.js"

/**
 * Why a value was refused: what the field takes (worded by the caller around the value), or the parser's own
 * sentence, which already names the value.
 */
export type Refusal =
  | { readonly _tag: "Expected"; readonly expected: string; readonly detail?: string | undefined }
  | { readonly _tag: "Invalid"; readonly message: string }

/** A field's parser: the flag's text or the config file's value, to the typed value or a Refusal. */
export type Parse<A> = (input: string | number) => Either.Either<A, Refusal>

const expecting = (expected: string): Refusal => ({ _tag: "Expected", expected })
const invalid = (message: string): Refusal => ({ _tag: "Invalid", message })

/** A value as a config-file error shows it: JSON, so a string is quoted. */
export const show = (value: unknown): string => JSON.stringify(value) ?? String(value)

/** The refusal of a flag's value, one line: `-t: 'abc' is not a positive number of seconds …`. */
export const flagMessage = (flag: string, input: string | number, refusal: Refusal): string =>
  refusal._tag === "Expected"
    ? `${flag}: '${input}' is not ${refusal.expected}${refusal.detail === undefined ? "" : `: ${refusal.detail}`}`
    : `${flag}: ${refusal.message}`

/** The refusal of a config-file value, after its key: `expected a whole number, 1 or more, found 0`. */
export const found = (input: unknown, refusal: Refusal): string =>
  refusal._tag === "Expected"
    ? `expected ${refusal.expected}, found ${show(input)}${refusal.detail === undefined ? "" : `: ${refusal.detail}`}`
    : refusal.message

/** The refusal of a config-file value, one line: `services.a.backlog: expected a whole number, 1 or more, found 0`. */
export const keyMessage = (key: string, input: unknown, refusal: Refusal): string => `${key}: ${found(input, refusal)}`

/** `time-until-stop`, `stop-timeout`, `start-timeout`, `min-uptime`, `max-backoff`, `min-warm` (config/durations.ts). */
export const duration = (field: Durations.Field): Parse<Duration.Duration> => (input) =>
  Either.mapLeft(Durations.parse(field, input), expecting)

/** `shutdown-signal`: a name in any case, with or without SIG (`TERM`, `SIGINT`, `quit`), or a number (`15`). */
export const signal: Parse<Signal.Signal> = (input) => Either.mapLeft(Signal.parse(String(input)), invalid)

/**
 * The mode of a UNIX socket file soad creates when none is given: 0666 whatever soad's umask, as systemd's
 * SocketMode= (under root's umask 022, 0666 less the umask was 0644, and a reverse proxy's workers, another user,
 * could not connect). Restrict it with `socket-mode` and `socket-group`.
 */
export const defaultSocketMode = 0o666

/** What `socket-mode` takes. */
export const socketModeExpected = `an octal mode such as "0660" or 0o660`

/** `socket-mode`: octal text (`660`, `0660`, `0o660`), or a number from TOML (`0o660`), at most 0o777. */
export const socketMode: Parse<number> = (input) => {
  if (typeof input === "number") {
    return Number.isInteger(input) && input >= 0 && input <= 0o777
      ? Either.right(input)
      : Either.left(expecting(socketModeExpected))
  }
  const match = /^(?:0o?)?([0-7]{3})$/.exec(input.trim())
  return match !== null ? Either.right(parseInt(match[1]!, 8)) : Either.left(expecting(socketModeExpected))
}

/** The settings that choose a service's mode or mean something in one mode only, by their flag names. */
export type ModeKey = "upstream" | "accept" | typeof proxyKeys[number] | typeof acceptKeys[number]

/** The settings of proxy mode besides `upstream`. */
export const proxyKeys = ["max-held", "waiting-page"] as const

/** The settings of accept mode besides `accept`. */
export const acceptKeys = ["max-connections", "max-connections-per-source", "max-accept-rate"] as const

/** How a side words a mode's settings: the flags (`--max-held`), a file's keys (`max-held`), ServiceConfig.make's fields (`maxHeld`). */
export interface ModeWords {
  /** The setting itself. */
  readonly key: (key: ModeKey) => string
  /** The setting with a value: `--accept`, `accept = true`, `accept: true`; `--ready notify`, `ready = "notify"`. */
  readonly set: {
    (key: "accept", value: true): string
    (key: "ready", value: "notify"): string
  }
}

/**
 * The rules across a mode's settings, written once for the flags, the file (config/serviceInput.ts) and
 * ServiceConfig.make: a setting of proxy mode needs an upstream, one of accept mode needs accept, the two modes
 * exclude each other, and accept mode has no `ready notify`. Each broken rule in the side's words, with the setting
 * that breaks it (none: the two modes together).
 */
export const modeRules = (
  given: {
    readonly accept: boolean
    readonly upstream: boolean
    readonly notify: boolean
    readonly has: (key: ModeKey) => boolean
  },
  words: ModeWords
): ReadonlyArray<{ readonly key: ModeKey | "ready" | undefined; readonly message: string }> => [
  ...(given.upstream ? [] : proxyKeys.filter(given.has).map((key) => ({
    key,
    message: `${words.key(key)} works in proxy mode only: add ${words.key("upstream")}`
  }))),
  ...(given.accept ? [] : acceptKeys.filter(given.has).map((key) => ({
    key,
    message: `${words.key(key)} works with ${words.set("accept", true)} only (a process per connection)`
  }))),
  ...(given.accept && given.upstream
    ? [{ key: undefined, message: acceptWithUpstream(words.set("accept", true), words.key("upstream")) }]
    : []),
  ...(given.accept && given.notify
    ? [{ key: "ready" as const, message: acceptWithNotify(words.set("accept", true), words.set("ready", "notify")) }]
    : [])
]

/** Accept mode and proxy mode exclude each other: what to say, with the names of the two settings. */
export const acceptWithUpstream = (accept: string, upstream: string): string =>
  `${accept} (a process per connection) cannot be combined with ${upstream} (proxy mode): choose one`

/** `--accept` with `--ready notify`: an instance serves its one connection; nothing waits for it to be ready. */
export const acceptWithNotify = (accept: string, ready: string): string =>
  `${ready} has no meaning with ${accept} (an instance serves the connection it was started with): drop one`

/** What a count takes. */
export const countExpected = "a whole number, 1 or more"

/** `backlog`, `max-held`, `max-running`, `max-connections`, `max-connections-per-source`: a whole number, 1 or more (at most 2^31 - 1, what C's int holds). */
export const count: Parse<number> = (input) => {
  const value = typeof input === "number" ? input : /^\s*\d+\s*$/.test(input) ? Number(input) : Number.NaN
  return Number.isInteger(value) && value >= 1 && value <= 2_147_483_647
    ? Either.right(value)
    : Either.left(expecting(countExpected))
}

/** What a rate takes. */
export const rateExpected =
  `a rate N/DURATION such as "50/1s", "50/s" or "600/1m" (N a whole number, 1 or more; DURATION from 1 ms to about 24.8 days)`

/** A bare unit after the slash (`50/s`) means one of it. */
const bareUnit = /^(?:ms|s|m|h|d)$/

/**
 * `max-accept-rate`: `N/DURATION` (`50/1s`, `50/s`, `600/1m`, `3/0.5`), N as a count, DURATION as every duration
 * (seconds, or with units) from 1 ms to Durations.maxMillis. Linear: one split, then the count and duration parsers.
 */
export const rate: Parse<{ readonly count: number; readonly per: Duration.Duration }> = (input) => {
  const text = String(input)
  const slash = text.indexOf("/")
  if (typeof input !== "string" || slash < 0) return Either.left(expecting(rateExpected))
  const n = count(text.slice(0, slash))
  const after = text.slice(slash + 1).trim()
  const seconds = Durations.seconds(bareUnit.test(after) ? `1${after}` : after)
  const millis = seconds === undefined ? Number.NaN : Math.round(seconds * 1000)
  if (Either.isLeft(n) || !(millis >= 1 && millis <= Durations.maxMillis)) return Either.left(expecting(rateExpected))
  return Either.right({ count: n.right, per: Duration.millis(millis) })
}

/** What a count that may be 0 takes. */
export const countOrZeroExpected = "a whole number, 0 or more"

/** `start-limit-burst`: a whole number, 0 (no limit) or more. */
export const countOrZero: Parse<number> = (input) => {
  const value = typeof input === "number" ? input : /^\s*\d+\s*$/.test(input) ? Number(input) : Number.NaN
  return Number.isInteger(value) && value >= 0 && value <= 2_147_483_647
    ? Either.right(value)
    : Either.left(expecting(countOrZeroExpected))
}

/** `socket` (`-s`): a UNIX socket path, `unix:` optional; relative to `cwd`. */
export const socket = (cwd: string): Parse<Address.Address> => (input) => {
  const text = String(input)
  return Either.mapLeft(Address.parseAddress(text.startsWith("unix:") ? text : `unix:${text}`, cwd), invalid)
}

/** `listen` (`-l`): `[NAME=]ADDR`; relative paths against `cwd`. */
export const listener = (cwd: string): Parse<Address.ListenerConfig> => (input) =>
  Either.mapLeft(Address.parseListener(String(input), cwd), invalid)

/** `upstream`: `HOST:PORT`, a UNIX socket path, or `auto`. */
export const upstream = (cwd: string): Parse<Address.UpstreamAddress> => (input) =>
  Either.mapLeft(Address.parseUpstream(String(input), cwd), invalid)

/**
 * An entry of `env`: why it cannot reach the app, or undefined. A name is not empty and has no `=` or NUL
 * (execve's `NAME=value` strings would carry another name, or be cut short), a value has no NUL.
 */
export const envProblem = (name: string, value: string): string | undefined =>
  name === "" || name.includes("=") || name.includes("\0")
    ? `${show(name)} is no environment variable name: a name is not empty and has no '=' or NUL`
    : value.includes("\0")
    ? `the value of ${show(name)} contains a NUL byte, which no environment variable can hold`
    : undefined

/** `metrics`: an address to serve Prometheus metrics on. */
export const address = (cwd: string): Parse<Address.Address> => (input) =>
  Either.mapLeft(Address.parseAddress(String(input), cwd), invalid)

/**
 * `waiting-page-file`: a readable regular file of at most 64 KiB, UTF-8 text (relative to `cwd`); read now, so a
 * reload reads it again.
 */
export const pageFile = (cwd: string): Parse<{ readonly path: string; readonly text: string }> => (input) => {
  const path = Path.resolve(cwd, String(input))
  try {
    const stat = Fs.statSync(path)
    if (!stat.isFile()) return Either.left(invalid(`${path} is not a regular file: give an HTML file`))
    if (stat.size > WaitingPage.maxFileBytes) {
      return Either.left(invalid(`${path} is ${stat.size} bytes, more than the ${WaitingPage.maxFileBytes} a waiting page may have`))
    }
    return Either.right({ path, text: Fs.readFileSync(path, "utf8") })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "EIO"
    return Either.left(invalid(`cannot read ${path} (${code}): give a readable HTML file`))
  }
}
