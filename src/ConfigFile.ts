/**
 * The config file: TOML whose keys are the long flag names, parsed with smol-toml and validated with Effect
 * Schema into typed ServiceConfigs. Every error names the file, the service, the field, what was expected and
 * what was found, and all of them are reported at once.
 *
 *     max-running = 4
 *     min-available-memory = "200MB"
 *     [defaults]
 *     time-until-stop = 300
 *     [services.blog]
 *     listen = ["/run/blog.sock"]
 *     command = ["gunicorn", "blog:app"]
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { parse as parseToml, TomlError } from "smol-toml"
import * as Address from "./Address.js"
import * as ServiceConfig from "./ServiceConfig.js"
import * as Fields from "./config/fields.js"
import * as ServiceInput from "./config/serviceInput.js"
import * as ServiceSchema from "./config/serviceSchema.js"

/** The config file cannot be used; `errors` lists every problem, one line each. */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly path: string
  readonly errors: ReadonlyArray<string>
}> {
  override get message(): string {
    return this.errors.join("\n")
  }
}

/** The RAM budget of a config file. */
export interface BudgetConfig {
  /** At most this many apps run at once. */
  readonly maxRunning: number | undefined
  /** Keep at least this many bytes of MemAvailable (/proc/meminfo) free when starting an app. */
  readonly minAvailableMemory: number | undefined
  /** An app is stopped to make room only after it has run this long. */
  readonly minWarm: Duration.Duration
}

/** A whole config file, resolved. */
export interface FileConfig {
  readonly path: string
  readonly services: ReadonlyArray<ServiceConfig.ServiceConfig>
  readonly budget: BudgetConfig
}

/** The default `min-warm`. */
export const defaultMinWarm = Duration.seconds(30)

const { Count, Seconds, expecting } = ServiceSchema

/** One service's table (and the defaults table): the keys flags and files share (config/serviceInput.ts). */
export const Service = ServiceSchema.ServiceInput
type Service = ServiceInput.ServiceInput

/** The top level of the file. */
export const File = Schema.Struct({
  "max-running": Schema.optional(Count),
  "min-available-memory": Schema.optional(expecting(Schema.Union(Schema.String, Schema.Number), `a size such as "200MB"`)),
  "min-warm": Schema.optional(Seconds("min-warm")),
  defaults: Schema.optional(expecting(Schema.Record({ key: Schema.String, value: Schema.Unknown }), "a table")),
  services: expecting(Schema.Record({ key: Schema.String, value: Schema.Unknown }), "a table of services")
})

/** Name → id lookups (the live ones use getpwnam/getgrnam). */
export type Resolver = ServiceInput.Resolver

const units: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3
}

/** Parses "200MB", "1.5GiB", "512M" or a number of bytes. */
export const parseBytes = (input: string | number): number | undefined => {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input)
  const unit = units[match?.[2]?.toLowerCase() ?? "x"]
  return match === null || unit === undefined ? undefined : Number(match[1]) * unit
}

const show = Fields.show

const validName = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

/** The known key nearest to a misspelt one (edit distance at most 3), if any. */
const closest = (key: string, known: ReadonlyArray<string>): string | undefined => {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i)
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0]!
      row[0] = i
      for (let j = 1; j <= b.length; j++) {
        const current = row[j]!
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
        previous = current
      }
    }
    return row[b.length]!
  }
  let best: string | undefined
  let bestDistance = 4
  for (const candidate of known) {
    const d = distance(key, candidate)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

/** The services of the last decode, by their tables (see decode): what a reload that changed nothing reuses. */
let lastLoad = new Map<string, ServiceConfig.ServiceConfig>()

/** Keys whose value is looked up on the machine when the file is loaded: such a service is always resolved anew. */
const machineKeys = ["user", "group", "socket-user", "socket-group", "waiting-page-file"]
const machineBound = (value: unknown, defaults: Record<string, unknown> | undefined): boolean => {
  const table = typeof value === "object" && value !== null ? value as Record<string, unknown> : {}
  return machineKeys.some((key) => table[key] !== undefined || defaults?.[key] !== undefined)
}

/** Validates parsed TOML: the FileConfig, or every error, each prefixed with the file's path. */
export const decode = (
  path: string,
  data: unknown,
  resolver: Resolver
): Either.Either<FileConfig, ConfigError> => {
  const fail = (errors: ReadonlyArray<string>) =>
    Either.left(new ConfigError({ path, errors: errors.map((error) => `${path}: ${error}`) }))
  const errors: Array<string> = []
  const strict = { errors: "all", onExcessProperty: "error" } as const
  /** Decodes one part; its errors go to the list, prefixed with where it is. */
  const part = <A, I>(schema: Schema.Schema<A, I>, value: unknown, prefix: ReadonlyArray<string>): A | undefined => {
    const result = Schema.decodeUnknownEither(schema, strict)(value)
    if (Either.isRight(result)) return result.right
    const seen = new Set<string>()
    for (const issue of ParseResult.ArrayFormatter.formatErrorSync(result.left)) {
      const where = [...prefix, ...issue.path.map(String)].join(".")
      const key = String(issue.path.at(-1) ?? "")
      const message = issue.message.replace(/^is unexpected, expected: (.*)$/s, (_, keys: string) => {
        const known = keys.split(" | ").map((k) => JSON.parse(k) as string)
        const near = closest(key, known)
        return near !== undefined ? `unknown key; did you mean ${near}?` : `unknown key; the keys here are ${known.join(", ")}`
      })
      // Optional fields also report "expected undefined": only the first line per field is useful.
      if (seen.has(where)) continue
      seen.add(where)
      errors.push(`${where === "" ? "(top level)" : where}: ${message}`)
    }
    return undefined
  }
  const file = part(File, data, [])
  /** A top-level key, by the parser its flag (if any) shares. */
  const topLevel = <A>(key: string, parse: Fields.Parse<A>, value: string | number | undefined): A | undefined => {
    if (value === undefined) return undefined
    const parsed = parse(value)
    if (Either.isLeft(parsed)) errors.push(Fields.keyMessage(key, value, parsed.left))
    return Either.getOrUndefined(parsed)
  }
  const maxRunning = topLevel("max-running", Fields.count, file?.["max-running"])
  // Even when the top level is wrong, the services are checked too, so every error shows at once.
  const table = (value: unknown): Record<string, unknown> | undefined =>
    typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  const top = table(data) ?? {}
  const rawDefaults = table(top.defaults)
  const defaults = rawDefaults === undefined ? {} : part(Service, rawDefaults, ["defaults"]) ?? {}
  const rawServices = table(top.services) ?? {}
  const services: Array<ServiceConfig.ServiceConfig> = []
  const baseDir = Path.dirname(Path.resolve(path))
  const memo = new Map<string, ServiceConfig.ServiceConfig>()
  for (const [name, value] of Object.entries(rawServices)) {
    // A service whose table (and [defaults]) is as it was at the last load is that load's config, the same object:
    // a reload of 1,000 services that changes one validates one (and compares the others at once), unless its
    // settings depend on the machine at load time (a user's ids, a waiting page's file), which are read again.
    const key = JSON.stringify([name, baseDir, rawDefaults ?? null, value])
    const known = machineBound(value, rawDefaults) ? undefined : lastLoad.get(key)
    if (known !== undefined) {
      memo.set(key, known)
      services.push(known)
      continue
    }
    const fields = part(Service, value, ["services", name])
    if (fields === undefined) continue
    if (!validName.test(name)) {
      errors.push(`services.${name}: a service name is letters, digits, '_', '.' and '-', up to 64, found ${show(name)}`)
      continue
    }
    const service = ServiceInput.resolve({ ...defaults, ...fields }, {
      name,
      own: new Set(Object.keys(fields)),
      naming: ServiceInput.keyNaming,
      resolver,
      baseDir
    })
    if (Either.isLeft(service)) errors.push(...service.left.map((problem) => ServiceInput.keyMessage(name, problem)))
    else {
      services.push(service.right)
      memo.set(key, service.right)
    }
  }
  lastLoad = memo
  if (file !== undefined && Object.keys(rawServices).length === 0) {
    errors.push("services: expected at least one [services.NAME] table, found none")
  }
  if (file === undefined) return fail(errors)
  let minAvailableMemory: number | undefined
  if (file["min-available-memory"] !== undefined) {
    minAvailableMemory = parseBytes(file["min-available-memory"])
    if (minAvailableMemory === undefined) {
      errors.push(`min-available-memory: expected a size such as "200MB" or "1GiB", found ${show(file["min-available-memory"])}`)
    }
  }
  // Two services cannot listen on one address (nor on overlapping ones: a wildcard and an address of its port).
  const taken = new Map<string, Array<{ readonly address: Address.Address; readonly service: string }>>()
  for (const service of services) {
    for (const listener of service.listeners) {
      const key = Address.overlapKey(listener.address)
      if (key === undefined) continue
      const same = taken.get(key) ?? []
      const owner = same.find((other) => other.service !== service.name && Address.overlaps(other.address, listener.address))
      if (owner !== undefined) {
        const text = Address.format(listener.address)
        const other = Address.format(owner.address)
        errors.push(
          `services.${service.name}.listen: ${text} ${text === other ? "is already" : `overlaps ${other},`} a listener of service ${owner.service}`
        )
      }
      same.push({ address: listener.address, service: service.name })
      taken.set(key, same)
    }
  }
  const minWarm = topLevel("min-warm", Fields.duration("min-warm"), file["min-warm"]) ?? defaultMinWarm
  if (errors.length > 0) return fail(errors)
  return Either.right({
    path,
    services,
    budget: {
      maxRunning,
      minAvailableMemory,
      minWarm
    }
  })
}

/** Reads, parses and validates a config file. */
export const load = (path: string, resolver: Resolver): Effect.Effect<FileConfig, ConfigError> =>
  Effect.suspend(() => {
    let text: string
    try {
      text = Fs.readFileSync(path, "utf8")
    } catch (error) {
      return Effect.fail(new ConfigError({ path, errors: [`${path}: cannot read it: ${(error as Error).message}`] }))
    }
    let data: unknown
    try {
      data = parseToml(text)
    } catch (error) {
      const detail = error instanceof TomlError
        ? `line ${error.line}, column ${error.column}: ${error.message.split("\n")[0]}`
        : String(error)
      return Effect.fail(new ConfigError({ path, errors: [`${path}: not valid TOML: ${detail}`] }))
    }
    return decode(path, data, resolver)
  })

/** What `soad check` prints: one block per service. */
export const describe = (file: FileConfig): string => {
  const lines: Array<string> = []
  const budget = file.budget
  const limits = [
    budget.maxRunning !== undefined ? `at most ${budget.maxRunning} running` : undefined,
    budget.minAvailableMemory !== undefined ? `keep ${Math.round(budget.minAvailableMemory / 1e6)} MB available` : undefined
  ].filter((limit) => limit !== undefined)
  lines.push(`${file.path}: ${file.services.length} service${file.services.length === 1 ? "" : "s"}` +
    (limits.length > 0 ? `; ${limits.join(", ")}, stopping apps up at least ${Duration.format(budget.minWarm)}` : ""))
  for (const service of file.services) {
    lines.push(``)
    lines.push(`[${service.name}]`)
    lines.push(`  listen   ${service.listeners.map((l) => (l.name === Address.defaultName ? "" : `${l.name}=`) + Address.format(l.address)).join(", ")}`)
    lines.push(`  command  ${service.command.map((arg) => (/^[\w./:=@%+-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ")}`)
    if (service.listeners.some((listener) => listener.address._tag === "Unix")) {
      const { gid, mode, uid } = service.socket
      lines.push(
        `  sockets  mode ${(mode ?? ServiceConfig.defaultSocketMode).toString(8).padStart(4, "0")}, ` +
          `owner ${uid === undefined ? "soad's user" : `uid ${uid}`}, group ${gid === undefined ? "soad's group" : `gid ${gid}`}`
      )
    }
    if (service.cwd !== undefined) lines.push(`  cwd      ${service.cwd}`)
    if (service.user !== undefined) lines.push(`  user     uid ${service.user.uid}, gid ${service.user.gid}`)
    const mode = service.mode
    if (mode._tag === "Accept") {
      const rate = mode.maxAcceptRate
      lines.push(`  accept   a process per connection, at most ${mode.maxConnections} at once, ` +
        `${ServiceConfig.perSourceText(mode)}, ${rate.count} started per ${Duration.format(rate.per)}`)
      lines.push(`  stop     each instance ends with its connection; on shutdown ${service.shutdownSignal.name}, ` +
        `SIGKILL after ${Duration.format(service.stopTimeout)}`)
      continue
    }
    if (mode._tag === "Proxy") lines.push(`  upstream ${upstreamText(mode.upstream)}`)
    if (service.ready === "notify") {
      lines.push(`  ready    when the app sends READY=1 (ready = "notify"), within ${Duration.format(service.startTimeout)}`)
    }
    lines.push(
      `  stop     after ${Duration.format(service.idleTimeout)} idle with ${service.shutdownSignal.name}, ` +
        `SIGKILL after ${Duration.format(service.stopTimeout)}`
    )
    const page = mode._tag === "Proxy" ? mode.waitingPage : undefined
    if (page !== undefined) {
      lines.push(`  waiting  a page after ${Duration.format(page.after)}${page.file !== undefined ? ` (${page.file.path})` : ""}`)
    }
  }
  return lines.join("\n")
}

/** Where a proxied app listens, for `soad check`: the address, or what `auto` means. */
const upstreamText = (upstream: ServiceConfig.Upstream): string =>
  upstream._tag === "Auto" ? "auto (a free 127.0.0.1 port at each start, given to the app as PORT)" : Address.format(upstream)

/** Who runs the app, for messages: its user's name, its uid, or soad's own user. */
const runsAs = (user: ServiceConfig.RunAs | undefined): string =>
  user === undefined ? "soad's user" : user.name !== undefined ? `user ${user.name}` : `uid ${user.uid}`

/**
 * May the app's user execute (a file) or enter (a directory) this? By the mode bits for another user (soad may be
 * root, which may do more than the app's user), by access(2) for soad's own user.
 */
const mayExecute = (path: string, stat: Fs.Stats, user: ServiceConfig.RunAs | undefined): boolean => {
  if (user === undefined) {
    try {
      Fs.accessSync(path, Fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  }
  if (user.uid === 0) return stat.isDirectory() || (stat.mode & 0o111) !== 0
  if (stat.uid === user.uid) return (stat.mode & 0o100) !== 0
  if (stat.gid === user.gid || user.groups.includes(stat.gid)) return (stat.mode & 0o010) !== 0
  return (stat.mode & 0o001) !== 0
}

const statOf = (path: string): Fs.Stats | undefined => {
  try {
    return Fs.statSync(path)
  } catch {
    return undefined
  }
}

/** Why the app's command cannot be run (as execvp would look for it, in the app's PATH), or undefined if it can. */
const commandProblem = (service: ServiceConfig.ServiceConfig, warnings: Array<string>): string | undefined => {
  const file = service.command[0]
  const who = runsAs(service.user)
  const runnable = (path: string): string | undefined => {
    const stat = statOf(path)
    if (stat === undefined) return `${path} does not exist`
    if (!stat.isFile()) return `${path} is not a file`
    return mayExecute(path, stat, service.user) ? undefined : `${path} is not executable by ${who}`
  }
  if (file.includes("/")) {
    if (Path.isAbsolute(file)) return runnable(file)
    if (service.cwd !== undefined) return runnable(Path.resolve(service.cwd, file))
    warnings.push(`services.${service.name}.command: ${file} is relative to the directory soad starts in: give an absolute path or a cwd`)
    return undefined
  }
  const inherited = service.inheritEnv ? process.env.PATH : undefined
  const searched = service.env.PATH ?? inherited ?? "/usr/local/bin:/usr/bin:/bin"
  const candidates = searched.split(":").map((dir) => Path.resolve(service.cwd ?? process.cwd(), dir, file))
  const found = candidates.filter((candidate) => statOf(candidate)?.isFile() === true)
  if (found.some((candidate) => runnable(candidate) === undefined)) return undefined
  if (found.length > 0) return `${found[0]} is not executable by ${who}`
  return `${file} is not on the app's PATH (${searched}): install it, or give its absolute path`
}

/**
 * What `soad check` looks at beyond the file, on this machine: each service's command (on the app's PATH,
 * executable by the user the app runs as), its cwd, and the directory of each UNIX socket. Each of these would
 * certainly fail at start, so each is an error naming the path; what may differ when soad runs (a relative
 * command without a cwd) is a warning.
 */
/**
 * Why a service's app can never be started on this machine, as configured: its command (not on the app's PATH, not
 * executable by its user) or its cwd; each `field: message`. `soad check` says these, and a run says them in the
 * same words at start (the service is failed at once, the others run).
 */
export const runProblems = (service: ServiceConfig.ServiceConfig, warnings: Array<string> = []): Array<{ readonly field: string; readonly message: string }> => {
  const problems: Array<{ readonly field: string; readonly message: string }> = []
  const command = commandProblem(service, warnings)
  if (command !== undefined) problems.push({ field: "command", message: command })
  if (service.cwd !== undefined) {
    const stat = statOf(service.cwd)
    const message = stat === undefined
      ? `${service.cwd} does not exist`
      : !stat.isDirectory()
      ? `${service.cwd} is not a directory`
      : !mayExecute(service.cwd, stat, service.user)
      ? `${service.cwd} cannot be entered by ${runsAs(service.user)}`
      : undefined
    if (message !== undefined) problems.push({ field: "cwd", message })
  }
  return problems
}

export const machineProblems = (file: FileConfig): { readonly errors: Array<string>; readonly warnings: Array<string> } => {
  const errors: Array<string> = []
  const warnings: Array<string> = []
  for (const service of file.services) {
    const at = (field: string, message: string) => errors.push(`${file.path}: services.${service.name}.${field}: ${message}`)
    for (const { field, message } of runProblems(service, warnings)) at(field, message)
    for (const listener of service.listeners) {
      if (listener.address._tag !== "Unix") continue
      const dir = Path.dirname(listener.address.path)
      const stat = statOf(dir)
      if (stat === undefined) at("listen", `${listener.address.path}: the directory ${dir} does not exist: create it first`)
      else if (!stat.isDirectory()) at("listen", `${listener.address.path}: ${dir} is not a directory`)
    }
  }
  return { errors, warnings: warnings.map((warning) => `${file.path}: ${warning}`) }
}

/** `soad check`: the file (every error at once), then the machine (machineProblems); the config and the warnings. */
export const check = (
  path: string,
  resolver: Resolver
): Effect.Effect<{ readonly file: FileConfig; readonly warnings: ReadonlyArray<string> }, ConfigError> =>
  Effect.flatMap(load(path, resolver), (file) => {
    const { errors, warnings } = machineProblems(file)
    return errors.length > 0 ? Effect.fail(new ConfigError({ path, errors })) : Effect.succeed({ file, warnings })
  })
