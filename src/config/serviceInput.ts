/**
 * One service's settings as a person gives them, flags or a config file's table, and the one function that turns
 * them into a ServiceConfig. The command line (cli/command.ts) and the config file (ConfigFile.ts) both build a
 * `ServiceInput` (keys are the long flag names, values as typed: text, numbers, booleans, lists) and call
 * `resolve`, so every field is parsed by one parser (config/fields.ts) and every rule across fields is written
 * once, here; each side only words the settings its own way (a `Naming`: `--accept` or `accept = true`).
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Path from "node:path"
import * as Address from "../Address.js"
import * as ServiceConfig from "../ServiceConfig.js"
import * as Durations from "./durations.js"
import * as Fields from "./fields.js"
import * as Ids from "./ids.js"
import type { Resolver } from "../os/users.js"

import type { ServiceInput as ServiceInputSchema } from "./serviceSchema.js"

export type { Resolver } from "../os/users.js"

/** One service's settings, keyed by the long flag names (their schema: config/serviceSchema.ts). */
export type ServiceInput = typeof ServiceInputSchema.Type

/** A key of ServiceInput. */
export type Key = keyof ServiceInput

/** How one side words a setting: the command line (`--accept`, `--ready notify`) or a file (`accept = true`). */
export interface Naming {
  /** The setting itself: `--max-held`, `-t`; `max-held`. */
  readonly key: (key: Key) => string
  /** The setting with a value: `--ready notify`, `--accept`; `ready = "notify"`, `accept = true`. */
  readonly set: (key: Key, value: string | boolean) => string
}

/** Flags that have a short form, as refusals name them. */
const shortFlags: Partial<Record<Key, string>> = { "time-until-stop": "-t", "shutdown-signal": "-S", socket: "-s", listen: "-l" }

/** The command line's words. */
export const flagNaming: Naming = {
  key: (key) => shortFlags[key] ?? `--${key}`,
  set: (key, value) => value === true ? `--${key}` : `--${key} ${value}`
}

/** A config file's words. */
export const keyNaming: Naming = {
  key: (key) => key,
  set: (key, value) => `${key} = ${typeof value === "string" ? JSON.stringify(value) : value}`
}

/**
 * What is wrong with a setting: `key` (with the `index` of a list's element, or the name of a table's entry) and
 * the value refused, or a rule across settings (no value) worded with the side's Naming. No key: the whole service.
 */
export interface Problem {
  readonly key: Key | undefined
  readonly at?: number | string | undefined
  readonly value?: unknown
  readonly refusal: Fields.Refusal
  /** The service has no command, or no listener: each side says how to give one. */
  readonly missing?: "command" | "listen"
}

const noCommand: Fields.Refusal = { _tag: "Expected", expected: `the app's program and arguments, e.g. command = ["gunicorn", "app:app"]` }
const noListener: Fields.Refusal = { _tag: "Invalid", message: `expected at least one listener, e.g. listen = ["/run/app.sock"], found none` }

/** What `resolve` needs besides the settings. */
export interface Context {
  /** The service's name; undefined: the command's base name (a single app on the command line). */
  readonly name: string | undefined
  /**
   * The keys the service set itself (flags, or its own table); the others came from a file's [defaults], where a
   * key of one mode applies to the services of that mode only, and is not refused for the others.
   */
  readonly own: ReadonlySet<string>
  readonly naming: Naming
  readonly resolver: Resolver
  /** Relative paths (sockets, the waiting page's file) are relative to this. */
  readonly baseDir: string
}

/** Turns one service's settings into a ServiceConfig, or every problem with them. */
export const resolve = (
  input: ServiceInput,
  context: Context
): Either.Either<ServiceConfig.ServiceConfig, ReadonlyArray<Problem>> => {
  const { baseDir, naming, own, resolver } = context
  const problems: Array<Problem> = []
  const invalid = (key: Key | undefined, message: string, value?: unknown, at?: number | string) =>
    problems.push({ key, at, value, refusal: { _tag: "Invalid", message } })
  /** A key by the parser its flag shares; undefined if absent or refused. */
  const field = <A>(key: Key, parse: Fields.Parse<A>, value: string | number | undefined, at?: number): A | undefined => {
    if (value === undefined) return undefined
    const parsed = parse(value)
    if (Either.isLeft(parsed)) problems.push({ key, at, value, refusal: parsed.left })
    return Either.getOrUndefined(parsed)
  }
  const accept = input.accept === true
  const proxy = input.upstream !== undefined
  // A key of another mode: refused when the service set it itself, left out when it came from [defaults].
  const settings: ServiceInput = { ...input }
  const given = { accept, upstream: proxy, notify: settings.ready === "notify", has: (key: Key) => settings[key] !== undefined }
  for (const { key, message } of Fields.modeRules(given, naming)) {
    if (key === undefined || own.has(key)) invalid(undefined, message)
    if (key !== undefined) delete (settings as Record<string, unknown>)[key]
  }
  if (settings["waiting-page-file"] !== undefined && settings["waiting-page"] === undefined) {
    if (own.has("waiting-page-file")) invalid(undefined, `${naming.key("waiting-page-file")} needs ${naming.key("waiting-page")} too`)
    delete (settings as Record<string, unknown>)["waiting-page-file"]
  }

  const listeners = listenersOf(settings, field, baseDir, invalid, () =>
    problems.push({ key: "listen", refusal: noListener, missing: "listen" }))
  const command = settings.command ?? []
  if (command.length === 0 || command[0] === "") {
    problems.push({ key: "command", value: settings.command ?? "nothing", refusal: noCommand, missing: "command" })
  }
  const env = envOf(settings.env ?? {}, invalid)
  const signal = field("shutdown-signal", Fields.signal, settings["shutdown-signal"])
  const seconds = (key: Exclude<Durations.Field, "min-warm" | "waiting-page">) => field(key, Fields.duration(key), settings[key])
  const durations = {
    idleTimeout: seconds("time-until-stop"),
    stopTimeout: seconds("stop-timeout"),
    startTimeout: seconds("start-timeout"),
    minUptime: seconds("min-uptime"),
    maxBackoff: seconds("max-backoff"),
    startLimitInterval: seconds("start-limit-interval")
  }
  const startLimitBurst = field("start-limit-burst", Fields.countOrZero, settings["start-limit-burst"])
  const mode = field("socket-mode", Fields.socketMode, settings["socket-mode"])
  const backlog = field("backlog", Fields.count, settings.backlog)
  const maxHeld = field("max-held", Fields.count, settings["max-held"])
  const maxConnections = field("max-connections", Fields.count, settings["max-connections"])
  const perSource = field("max-connections-per-source", Fields.count, settings["max-connections-per-source"])
  const acceptRate = field("max-accept-rate", Fields.rate, settings["max-accept-rate"])
  // Above max-connections, a per-source limit could never be reached: refused when the service set it itself, as
  // a mistake; from [defaults], it is lowered to the service's max-connections (ServiceConfig.make).
  const allowed = maxConnections ?? ServiceConfig.defaults.maxConnections
  if (perSource !== undefined && perSource > allowed && own.has("max-connections-per-source")) {
    invalid(
      undefined,
      `${naming.key("max-connections-per-source")} is ${perSource}, more than ${naming.key("max-connections")} (${allowed}): ` +
        `one source could never reach it; lower it, or raise ${naming.key("max-connections")}`
    )
  }
  const upstream = field("upstream", Fields.upstream(baseDir), settings.upstream)
  const after = field("waiting-page", Fields.duration("waiting-page"), settings["waiting-page"])
  const pageFile = after === undefined ? undefined : field("waiting-page-file", Fields.pageFile(baseDir), settings["waiting-page-file"])
  const lookUp = <A>(key: Key, kind: "user" | "group", value: string | number, find: (v: string | number) => A | undefined) => {
    const ref = Ids.parse(value)
    if (Either.isLeft(ref)) {
      problems.push({ key, value, refusal: { _tag: "Expected", expected: `a ${kind} name or a ${kind === "user" ? "uid" : "gid"}`, detail: ref.left } })
      return undefined
    }
    const found = find(ref.right)
    if (found === undefined) invalid(key, `no ${kind} ${Fields.show(value)}`)
    return found
  }
  const socketUid = settings["socket-user"] === undefined ? undefined : lookUp("socket-user", "user", settings["socket-user"], resolver.user)?.uid
  const socketGid = settings["socket-group"] === undefined ? undefined : lookUp("socket-group", "group", settings["socket-group"], resolver.gid)
  let user: ServiceConfig.RunAs | undefined
  if (settings.user !== undefined || settings.group !== undefined) {
    const key = settings.user !== undefined ? "user" : "group"
    if (!resolver.root) invalid(key, "running the app as another user needs soad to run as root")
    const found = settings.user !== undefined ? lookUp("user", "user", settings.user, resolver.user) : undefined
    const gid = settings.group !== undefined ? lookUp("group", "group", settings.group, resolver.gid) : found?.gid
    if (gid !== undefined && (settings.user === undefined || found !== undefined)) {
      user = found !== undefined
        ? { ...found, gid, groups: found.groups.includes(gid) ? found.groups : [gid, ...found.groups] }
        : { uid: process.getuid?.() ?? 0, gid, groups: [gid] }
    }
  }
  if (settings.cwd !== undefined && !Path.isAbsolute(settings.cwd)) {
    problems.push({ key: "cwd", value: settings.cwd, refusal: { _tag: "Expected", expected: "an absolute path" } })
  }
  if (problems.length > 0) return Either.left(problems)
  return Either.right(ServiceConfig.make({
    ...(context.name !== undefined ? { name: context.name } : {}),
    listeners,
    command: [command[0]!, ...command.slice(1)],
    socket: { backlog: backlog ?? ServiceConfig.defaults.backlog, mode, uid: socketUid, gid: socketGid },
    env,
    inheritEnv: settings["inherit-env"] ?? true,
    cwd: settings.cwd,
    user,
    upstream,
    maxHeld,
    waitingPage: after === undefined ? undefined : { after, file: pageFile },
    accept,
    maxConnections,
    maxConnectionsPerSource: perSource,
    ...(acceptRate !== undefined ? { maxAcceptRate: acceptRate } : {}),
    idleIgnoresOpenConnections: settings["idle-ignores-open-connections"] ?? false,
    ready: settings.ready ?? ServiceConfig.defaults.ready,
    ...definedOnly({ ...durations, shutdownSignal: signal, startLimitBurst })
  }))
}

/**
 * The listeners, `socket` then `listen`, each once: an address given twice, or one that overlaps another (a
 * wildcard and an address on the same port), could never be bound twice, and the service would fail for ever.
 */
const listenersOf = (
  settings: ServiceInput,
  field: <A>(key: Key, parse: Fields.Parse<A>, value: string | number | undefined, at?: number) => A | undefined,
  baseDir: string,
  invalid: (key: Key | undefined, message: string, value?: unknown, at?: number | string) => void,
  missing: () => void
): Array<Address.ListenerConfig> => {
  const listeners: Array<Address.ListenerConfig> = []
  const given: Array<{ readonly key: Key; readonly at: number | undefined }> = []
  const add = (key: Key, at: number | undefined, listener: Address.ListenerConfig | undefined) => {
    if (listener === undefined) return
    const earlier = listeners.findIndex((other) => Address.overlaps(other.address, listener.address))
    if (earlier >= 0) {
      const other = listeners[earlier]!.address
      const text = Address.format(listener.address)
      invalid(
        key,
        Address.format(other) === text
          ? `${text} is given twice: a service listens on each address once`
          : `${text} overlaps ${Address.format(other)} (the same port on every interface): only one of them can be bound`,
        undefined,
        at
      )
      return
    }
    listeners.push(listener)
    given.push({ key, at })
  }
  const sockets = settings.socket === undefined ? [] : typeof settings.socket === "string" ? [settings.socket] : settings.socket
  const indexed = typeof settings.socket !== "string"
  sockets.forEach((path, i) => {
    const address = field("socket", Fields.socket(baseDir), path, indexed ? i : undefined)
    add("socket", indexed ? i : undefined, address === undefined ? undefined : { name: Address.defaultName, address })
  })
  ;(settings.listen ?? []).forEach((spec, i) => add("listen", i, field("listen", Fields.listener(baseDir), spec, i)))
  if (settings.listen === undefined && settings.socket === undefined) missing()
  return listeners
}

/** The app's extra environment, each entry as Fields.envProblem allows. */
const envOf = (
  env: Readonly<Record<string, string>>,
  invalid: (key: Key | undefined, message: string, value?: unknown, at?: number | string) => void
): Record<string, string> => {
  for (const [name, value] of Object.entries(env)) {
    const problem = Fields.envProblem(name, value)
    if (problem !== undefined) invalid("env", problem, undefined, name)
  }
  return { ...env }
}

const definedOnly = <A extends Record<string, unknown>>(record: A): { [K in keyof A]?: Exclude<A[K], undefined> } =>
  Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as {
    [K in keyof A]?: Exclude<A[K], undefined>
  }

/** A problem as a config file reports it: `services.blog.listen[1]: …`. */
export const keyMessage = (service: string, problem: Problem): string => {
  const where = problem.key === undefined
    ? `services.${service}`
    : `services.${service}.${problem.key}${
      problem.at === undefined ? "" : typeof problem.at === "number" ? `[${problem.at}]` : `.${problemKeyPart(problem.at)}`
    }`
  return `${where}: ${problem.value !== undefined ? Fields.found(problem.value, problem.refusal) : refusalText(problem.refusal)}`
}

/** A problem as the command line reports it: `-l: …`, `--user: no user "x"`, or a rule's own sentence. */
export const flagMessage = (problem: Problem): string => {
  if (problem.missing === "command") return "no command: give the app to run after --, e.g. soad -s /run/app.sock -- ./server"
  if (problem.missing === "listen") return "no socket: give one with -s PATH or -l ADDR"
  if (problem.key === undefined) return refusalText(problem.refusal)
  const flag = flagNaming.key(problem.key)
  return problem.value !== undefined && typeof problem.value !== "object"
    ? Fields.flagMessage(flag, String(problem.value), problem.refusal)
    : `${flag}: ${refusalText(problem.refusal)}`
}

const refusalText = (refusal: Fields.Refusal): string => refusal._tag === "Invalid" ? refusal.message : `expected ${refusal.expected}`

/** A table's entry name in a key path: bare when it can be, quoted as TOML would otherwise. */
const problemKeyPart = (name: string): string => /^[A-Za-z0-9_-]+$/.test(name) ? name : JSON.stringify(name)
