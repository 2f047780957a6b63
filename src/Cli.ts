/**
 * The command line: `soad -s /run/app.sock -t 240 -S TERM -- gunicorn app:app`, parsed with @effect/cli into
 * a typed ServiceConfig, then run by the Activator.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Path from "node:path"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Activator from "./Activator.js"
import * as Address from "./Address.js"
import * as Config from "./Config.js"
import * as Control from "./Control.js"
import * as ConfigFile from "./ConfigFile.js"
import * as Durations from "./internal/durations.js"
import { collectGarbage } from "./internal/gc.js"
import { notify } from "./internal/notify.js"
import * as Ids from "./internal/ids.js"
import * as Users from "./internal/users.js"
import * as Logging from "./Logging.js"
import * as Metrics from "./Metrics.js"
import * as Registry from "./Registry.js"
import { event } from "./Logging.js"
import { ProcessService } from "./ProcessService.js"
import * as Signal from "./Signal.js"
import * as Supervisor from "./Supervisor.js"
import type { SocketService } from "./SocketService.js"

/** The command line is wrong; `message` says what and how to fix it. Exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** soad's version, as `--version` prints it. */
export const version = "0.1.0"

const configFile = Options.text("config").pipe(
  Options.withAlias("c"),
  Options.withPseudoName("FILE"),
  Options.withDescription("Run every service of a TOML config file (instead of -s/-l and a command); SIGHUP reloads it."),
  Options.optional
)
const socket = Options.text("socket").pipe(
  Options.withAlias("s"),
  Options.withPseudoName("PATH"),
  Options.withDescription("A UNIX socket to listen on (repeatable): the app gets it at fd 3."),
  Options.repeated
)
const listen = Options.text("listen").pipe(
  Options.withAlias("l"),
  Options.withPseudoName("[NAME=]ADDR"),
  Options.withDescription(
    "A listener [NAME=]ADDR (repeatable, in order): /path, unix:PATH, @abstract, HOST:PORT, [IPV6]:PORT, :PORT, fd:N, fd:NAME."
  ),
  Options.repeated
)
const upstream = Options.text("upstream").pipe(
  Options.withPseudoName("ADDR"),
  Options.withDescription(
    "Proxy mode, for apps that bind their own port: soad accepts, starts the app and relays to ADDR (HOST:PORT, a UNIX " +
      "socket path, or auto: a free 127.0.0.1 port given to the app as PORT)."
  ),
  Options.optional
)
const maxHeld = Options.integer("max-held").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(
    "Proxy mode: hold at most N connections while the app starts; more wait in the backlog. Default: the fd limit / 8, at most 1024."
  ),
  Options.optional
)
const timeUntilStop = Options.text("time-until-stop").pipe(
  Options.withAlias("t"),
  Options.withPseudoName("SECONDS"),
  Options.withDescription("Seconds without activity before the app is stopped; decimals allowed. Default: 60."),
  Options.withDefault("60")
)
const shutdownSignal = Options.text("shutdown-signal").pipe(
  Options.withAlias("S"),
  Options.withPseudoName("SIGNAL"),
  Options.withDescription("The signal that asks the app to stop: a name (TERM, SIGINT, quit) or a number (15). Default: TERM."),
  Options.withDefault("TERM")
)
const stopTimeout = Options.text("stop-timeout").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription("Seconds the app may take to exit after the shutdown signal before it gets SIGKILL. Default: 30."),
  Options.withDefault("30")
)
const startTimeout = Options.text("start-timeout").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription("An app that has not accepted the waiting connection by then is stopped, a failed start. Default: 60."),
  Options.withDefault("60")
)
const idleIgnoresOpenConnections = Options.boolean("idle-ignores-open-connections").pipe(
  Options.withDescription(
    "Stop the app after -t without new connections even while accepted ones are still open (the original's rule)."
  )
)
const minUptime = Options.text("min-uptime").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription("A run shorter than this many seconds counts as a crash, and the next start backs off. Default: 5."),
  Options.withDefault("5")
)
const maxBackoff = Options.text("max-backoff").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription("The longest wait in seconds between starts of a crashing app (from 0.5 s, doubling). Default: 60."),
  Options.withDefault("60")
)
const backlog = Options.integer("backlog").pipe(
  Options.withPseudoName("N"),
  Options.withDescription("The listen(2) backlog of every listener: connections that wait while the app starts. Default: 1024."),
  Options.withDefault(Config.defaults.backlog)
)
const socketMode = Options.text("socket-mode").pipe(
  Options.withPseudoName("OCTAL"),
  Options.withDescription("Permissions of the UNIX socket files soad creates, such as 0660. Default: 0666 less the umask."),
  Options.optional
)
const socketUser = Options.text("socket-user").pipe(
  Options.withPseudoName("USER"),
  Options.withDescription("Owner of the UNIX socket files, a name or a uid (soad must be root). Default: soad's user."),
  Options.optional
)
const socketGroup = Options.text("socket-group").pipe(
  Options.withPseudoName("GROUP"),
  Options.withDescription("Group of the UNIX socket files, a name or a gid. Default: soad's group."),
  Options.optional
)
const user = Options.text("user").pipe(
  Options.withPseudoName("USER"),
  Options.withDescription("Run the app as this user, a name or a uid, with its groups, HOME and SHELL (soad must be root)."),
  Options.optional
)
const group = Options.text("group").pipe(
  Options.withPseudoName("GROUP"),
  Options.withDescription("Run the app with this primary group, a name or a gid. Default: the user's group."),
  Options.optional
)
const logFormat = Options.text("log-format").pipe(
  Options.withPseudoName(Logging.formats.join("|")),
  Options.withDescription("Log lines for people (text) or one JSON object per line (json) for log collectors. Default: text."),
  Options.withDefault("text")
)
const metrics = Options.text("metrics").pipe(
  Options.withPseudoName("ADDR"),
  Options.withDescription("Serve Prometheus metrics over HTTP at HOST:PORT or a UNIX socket path (GET /metrics)."),
  Options.optional
)
const control = Options.text("control").pipe(
  Options.withPseudoName("PATH"),
  Options.withDescription(
    "The control socket for soad status/wake/sleep. Default: $XDG_RUNTIME_DIR/soad.sock, else /run/soad/control.sock."
  ),
  Options.optional
)
const logLevel = Options.text("log-level").pipe(
  Options.withPseudoName(Logging.levels.join("|")),
  Options.withDescription("How much soad logs on stderr. Default: info."),
  Options.withDefault("info")
)
const command = Args.text({ name: "command" }).pipe(
  Args.withDescription("The app's command and arguments, after --; run without a shell."),
  Args.repeated
)

const options = {
  configFile,
  socket,
  listen,
  upstream,
  maxHeld,
  timeUntilStop,
  shutdownSignal,
  stopTimeout,
  startTimeout,
  idleIgnoresOpenConnections,
  minUptime,
  maxBackoff,
  backlog,
  socketMode,
  socketUser,
  socketGroup,
  user,
  group,
  logLevel,
  logFormat,
  metrics,
  control,
  command
}

/** What @effect/cli parsed, before validation. */
export type Parsed = Command.Command.ParseConfig<typeof options>

const usage = (message: string) => new UsageError({ message })

/** A duration flag, by the rule its config-file key shares (internal/durations.ts). */
const seconds = (flag: string, field: Durations.Field, text: string): Either.Either<Duration.Duration, UsageError> =>
  Either.mapLeft(Durations.parse(field, text), (expected) => usage(`${flag}: '${text}' is not ${expected}`))

/**
 * Turns parsed flags into a ServiceConfig; `commandAfterDashes` is the command given after `--`, if any.
 */
export const toConfig = (
  parsed: Parsed,
  commandAfterDashes: ReadonlyArray<string> | undefined,
  resolver: ConfigFile.Resolver,
  cwd: string = process.cwd()
): Either.Either<Config.ServiceConfig, UsageError> =>
  Either.gen(function*() {
    const positional = parsed.command
    let argv: ReadonlyArray<string>
    if (commandAfterDashes !== undefined) {
      const before = positional.slice(0, positional.length - commandAfterDashes.length)
      if (before.length > 0) {
        return yield* Either.left(
          usage(
            before[0]!.startsWith("-")
              ? `unknown option '${before[0]}'`
              : `unexpected argument '${before[0]}' before --: the app's command goes after --`
          )
        )
      }
      argv = commandAfterDashes
    } else {
      if (positional.length > 0 && positional[0]!.startsWith("-")) {
        return yield* Either.left(usage(`unknown option '${positional[0]}'`))
      }
      argv = positional
    }
    if (argv.length === 0 || argv[0] === "") {
      return yield* Either.left(usage("no command: give the app to run after --, e.g. soad -s /run/app.sock -- ./server"))
    }
    const listeners: Array<Address.ListenerConfig> = []
    for (const path of parsed.socket) {
      const address = yield* Either.mapLeft(
        path.startsWith("unix:") ? Address.parseAddress(path, cwd) : Address.parseAddress(`unix:${path}`, cwd),
        (message) => usage(`-s: ${message}`)
      )
      listeners.push({ name: Address.defaultName, address })
    }
    for (const spec of parsed.listen) {
      listeners.push(yield* Either.mapLeft(Address.parseListener(spec, cwd), (message) => usage(`-l: ${message}`)))
    }
    if (listeners.length === 0) {
      return yield* Either.left(usage("no socket: give one with -s PATH or -l ADDR"))
    }
    const signal = yield* Either.mapLeft(Signal.parse(parsed.shutdownSignal), (message) => usage(`-S: ${message}`))
    if (parsed.backlog < 1) return yield* Either.left(usage(`--backlog: must be at least 1`))
    let mode: number | undefined
    if (Option.isSome(parsed.socketMode)) {
      const text = parsed.socketMode.value
      if (!/^0?[0-7]{3}$/.test(text)) {
        return yield* Either.left(usage(`--socket-mode: '${text}' is not an octal mode such as 0660`))
      }
      mode = parseInt(text, 8)
    }
    const lookUp = <A>(flag: string, kind: "user" | "group", value: string, find: (v: string | number) => A | undefined) =>
      Either.flatMap(
        Either.mapLeft(Ids.parse(value), (why) => usage(`${flag}: '${value}' is not a ${kind} name or a valid id: ${why}`)),
        (ref) => {
          const found = find(ref)
          return found === undefined ? Either.left(usage(`${flag}: no ${kind} '${value}'`)) : Either.right(found)
        }
      )
    const uid = Option.isSome(parsed.socketUser)
      ? (yield* lookUp("--socket-user", "user", parsed.socketUser.value, resolver.user)).uid
      : undefined
    const gid = Option.isSome(parsed.socketGroup)
      ? yield* lookUp("--socket-group", "group", parsed.socketGroup.value, resolver.gid)
      : undefined
    let runAs: Config.RunAs | undefined
    if (Option.isSome(parsed.user) || Option.isSome(parsed.group)) {
      if (!resolver.root) {
        return yield* Either.left(usage(`${Option.isSome(parsed.user) ? "--user" : "--group"}: running the app as another user needs soad to run as root`))
      }
      const found = Option.isSome(parsed.user) ? yield* lookUp("--user", "user", parsed.user.value, resolver.user) : undefined
      const runGid = Option.isSome(parsed.group) ? yield* lookUp("--group", "group", parsed.group.value, resolver.gid) : found!.gid
      runAs = found !== undefined
        ? { ...found, gid: runGid, groups: found.groups.includes(runGid) ? found.groups : [runGid, ...found.groups] }
        : { uid: process.getuid?.() ?? 0, gid: runGid, groups: [runGid] }
    }
    let upstreamAddress: Config.Upstream | undefined
    if (Option.isSome(parsed.upstream)) {
      upstreamAddress = yield* Either.mapLeft(
        Address.parseUpstream(parsed.upstream.value, cwd),
        (message) => usage(`--upstream: ${message}`)
      )
    }
    if (Option.isSome(parsed.maxHeld) && parsed.maxHeld.value < 1) {
      return yield* Either.left(usage(`--max-held: expected a whole number, 1 or more, found ${parsed.maxHeld.value}`))
    }
    return Config.make({
      listeners,
      upstream: upstreamAddress,
      maxHeld: Option.getOrUndefined(parsed.maxHeld),
      command: [argv[0]!, ...argv.slice(1)],
      socket: { backlog: parsed.backlog, mode, uid, gid },
      user: runAs,
      idleTimeout: yield* seconds("-t", "time-until-stop", parsed.timeUntilStop),
      shutdownSignal: signal,
      stopTimeout: yield* seconds("--stop-timeout", "stop-timeout", parsed.stopTimeout),
      startTimeout: yield* seconds("--start-timeout", "start-timeout", parsed.startTimeout),
      idleIgnoresOpenConnections: parsed.idleIgnoresOpenConnections,
      minUptime: yield* seconds("--min-uptime", "min-uptime", parsed.minUptime),
      maxBackoff: yield* seconds("--max-backoff", "max-backoff", parsed.maxBackoff)
    })
  })

/** Options whose value may be attached (`-t5`, `--socket=PATH`): @effect/cli wants them apart. */
const valueFlags = new Set(["s", "l", "t", "S", "c"])

/** Every option that takes a value. */
const takesValue = new Set([
  "-s",
  "-l",
  "-t",
  "-S",
  "-c",
  "--config",
  "--socket",
  "--listen",
  "--time-until-stop",
  "--shutdown-signal",
  "--stop-timeout",
  "--start-timeout",
  "--min-uptime",
  "--max-backoff",
  "--backlog",
  "--socket-mode",
  "--socket-user",
  "--socket-group",
  "--user",
  "--group",
  "--log-level",
  "--log-format",
  "--metrics",
  "--control",
  "--upstream",
  "--max-held"
])

/** An option that takes a value but ends soad's part of the command line has none: a usage error. */
export const missingValue = (own: ReadonlyArray<string>): string | undefined => {
  const last = own.at(-1)
  return last !== undefined && takesValue.has(last) ? `option ${last} needs a value` : undefined
}

/**
 * Splits argv at the first `--` (the app's command is never parsed as soad's flags) and separates attached
 * values: `--socket=PATH` → `--socket PATH`, `-t5` → `-t 5`.
 */
export const splitArgv = (args: ReadonlyArray<string>): {
  readonly own: ReadonlyArray<string>
  readonly command: ReadonlyArray<string> | undefined
} => {
  const dashes = args.indexOf("--")
  const ownPart = dashes >= 0 ? args.slice(0, dashes) : args
  const own: Array<string> = []
  for (const arg of ownPart) {
    const long = /^(--[a-z][a-z-]*)=(.*)$/s.exec(arg)
    const short = /^-([a-zA-Z])(.+)$/s.exec(arg)
    if (long !== null) own.push(long[1]!, long[2]!)
    else if (short !== null && valueFlags.has(short[1]!)) own.push(`-${short[1]}`, short[2]!)
    else own.push(arg)
  }
  return { own, command: dashes >= 0 ? args.slice(dashes + 1) : undefined }
}

/** Parses `--log-level`. */
export const logLevelOf = (text: string): Either.Either<Logging.Level, UsageError> =>
  (Logging.levels as ReadonlyArray<string>).includes(text)
    ? Either.right(text as Logging.Level)
    : Either.left(usage(`--log-level: '${text}' is not one of ${Logging.levels.join(", ")}`))

/** Parses `--log-format`. */
export const logFormatOf = (text: string): Either.Either<Logging.Format, UsageError> =>
  (Logging.formats as ReadonlyArray<string>).includes(text)
    ? Either.right(text as Logging.Format)
    : Either.left(usage(`--log-format: '${text}' is not one of ${Logging.formats.join(", ")}`))

/** The control socket and the metrics endpoint, as the flags ask, until the scope closes. */
const observability = (parsed: Parsed) =>
  Effect.gen(function*() {
    const explicit = Option.isSome(parsed.control)
    yield* Control.serve(explicit ? Path.resolve(parsed.control.value) : Control.defaultPath(), explicit)
    if (Option.isSome(parsed.metrics)) {
      const text = parsed.metrics.value
      const address = yield* Either.mapLeft(Address.parseAddress(text), (message) => usage(`--metrics: ${message}`))
      yield* Metrics.serve(address)
    }
  })

/**
 * READY=1 now (every listener is bound); STOPPING=1 first thing when the scope begins to close; and, a moment
 * later, one full GC so the memory start-up used goes back to the system before soad sleeps.
 */
const ready = Effect.zipRight(
  notify("READY=1"),
  Effect.zipRight(
    Effect.addFinalizer(() => notify("STOPPING=1")),
    Effect.forkScoped(Effect.delay(collectGarbage, "1 second"))
  )
)

/** Runs soad on parsed flags: one Activator, or the Supervisor of a config file, until interrupted. */
const serve = (parsed: Parsed, commandAfterDashes: ReadonlyArray<string> | undefined) =>
  Effect.gen(function*() {
    const level = yield* logLevelOf(parsed.logLevel)
    const format = yield* logFormatOf(parsed.logFormat)
    const registry = yield* Registry.make
    const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      effect.pipe(Effect.provideService(Registry.Registry, registry), Effect.provide(Logging.layer(level, format)))
    if (Option.isSome(parsed.configFile)) {
      const path = parsed.configFile.value
      const extra = [
        parsed.socket.length > 0 ? "-s" : undefined,
        parsed.listen.length > 0 ? "-l" : undefined,
        (commandAfterDashes ?? parsed.command).length > 0 ? "a command" : undefined
      ].filter((flag) => flag !== undefined)
      if (extra.length > 0) {
        return yield* Effect.fail(usage(`-c takes the services from the file: give no ${extra.join(" or ")} with it`))
      }
      const file = yield* ConfigFile.load(path, Users.resolver)
      return yield* provide(Effect.scoped(
        Effect.gen(function*() {
          yield* forwardSignals(configSignals)
          const reloads = yield* onSignal("SIGHUP")
          const supervisor = yield* Supervisor.start(file)
          yield* (yield* ProcessService).announce
          yield* observability(parsed)
          yield* ready
          return yield* Effect.forever(Effect.gen(function*() {
            yield* reloads
            yield* event("info", "reloading", `SIGHUP: reloading ${path}`)
            const next = yield* Effect.either(ConfigFile.load(path, Users.resolver))
            if (Either.isRight(next)) {
              yield* supervisor.apply(next.right)
              return yield* Effect.forkScoped(Effect.delay(collectGarbage, "1 second"))
            }
            for (const error of next.left.errors) yield* event("error", "config_error", error)
            yield* event("error", "reload_failed", `the reload failed: soad keeps running the config it had`)
          }))
        })
      ))
    }
    const config = yield* toConfig(parsed, commandAfterDashes, Users.resolver)
    return yield* provide(Effect.scoped(
      Effect.gen(function*() {
        yield* forwardSignals(forwardedSignals)
        const listeners = yield* Activator.listen(config).pipe(Effect.annotateLogs("service", config.name))
        yield* (yield* ProcessService).announce
        const serving = yield* Effect.forkScoped(Activator.serve(config, listeners))
        yield* observability(parsed)
        yield* ready
        return yield* Fiber.join(serving)
      })
    ))
  })

/** Waits for a signal, each time it comes, until the scope closes. */
const onSignal = (name: NodeJS.Signals): Effect.Effect<Effect.Effect<void>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.sliding<void>(1)
    const handler = () => Queue.unsafeOffer(queue, undefined)
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on(name, handler)),
      () => Effect.sync(() => process.off(name, handler))
    )
    return Queue.take(queue)
  })

/** `soad check FILE`: validates, prints what would run; exit 0 or 1. */
export const check = (path: string) =>
  ConfigFile.load(path, Users.resolver).pipe(
    Effect.tap((file) => Console.log(`${ConfigFile.describe(file)}\n\n${path}: OK`))
  )

/** `soad` as an @effect/cli command; `commandAfterDashes` as split off by splitArgv. */
export const make = (commandAfterDashes: ReadonlyArray<string> | undefined) =>
  Command.make("soad", options, (parsed) => serve(parsed, commandAfterDashes)).pipe(
    Command.withDescription(
      "Socket activator/deactivator: holds the listening sockets, starts the app on the first connection with the " +
        "sockets at fd 3, 4, … (LISTEN_FDS), and stops it after a time without activity. " +
        "Also: soad check FILE (validate a config file), soad status [--json], soad wake NAME, soad sleep NAME " +
        "(talk to a running soad; --control PATH)."
    )
  )

/** @effect/cli prints its parse errors as documents; soad prints them as one line. */
const oneLineErrors = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Console.consoleWith((console) =>
    Effect.withConsole(effect, {
      ...console,
      error: (...args: ReadonlyArray<unknown>) => {
        // eslint-disable-next-line no-control-regex
        const text = args.map(String).join(" ").replace(/\x1b\[[0-9;]*m/g, "").replace(/\s+/g, " ").trim()
        return text === "" ? Effect.void : console.error(`soad: ${text} (see soad --help)`)
      }
    })
  )

/**
 * Parses `args` (without node and the script) and runs soad. Fails with UsageError or a ValidationError
 * (exit 2), ListenError (exit 1); the message has been printed.
 */
/** `soad status|wake|sleep …`: asks the running soad over its control socket. */
export const controlCommand = (args: ReadonlyArray<string>): Effect.Effect<void, Control.ControlError | UsageError> => {
  const [command, ...rest] = args
  let path = Control.defaultPath()
  let json = false
  const positional: Array<string> = []
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (arg === "--control" && i + 1 < rest.length) path = Path.resolve(rest[++i]!)
    else if (arg.startsWith("--control=")) path = Path.resolve(arg.slice("--control=".length))
    else if (arg === "--json" && command === "status") json = true
    else positional.push(arg)
  }
  const expected = command === "status" ? 0 : 1
  if (positional.length !== expected || positional.some((arg) => arg.startsWith("-"))) {
    return Effect.fail(usage(command === "status" ? "usage: soad status [--json] [--control PATH]" : `usage: soad ${command} NAME [--control PATH]`))
  }
  const body: Control.Request = command === "status"
    ? { command: "status" }
    : { command: command as "wake" | "sleep", service: positional[0]! }
  return Effect.flatMap(Control.request(path, body), (response) => {
    if (!response.ok) return Effect.fail(new Control.ControlError({ message: response.error }))
    if (command !== "status") return Console.log(response.message ?? "done")
    const services = response.services ?? []
    return Console.log(json ? JSON.stringify(services, null, 2) : Control.table(services))
  })
}

export const run = (args: ReadonlyArray<string>) => {
  if (args[0] === "status" || args[0] === "wake" || args[0] === "sleep") {
    return controlCommand(args).pipe(
      Effect.tapError((error) => Console.error(`soad: ${error.message}`))
    )
  }
  if (args[0] === "check") {
    const checked: Effect.Effect<unknown, ConfigFile.ConfigError | UsageError> =
      args.length === 2 && !args[1]!.startsWith("-") ? check(args[1]!) : Effect.fail(usage("usage: soad check FILE"))
    return checked.pipe(
        Effect.tapError((error) =>
          error._tag === "UsageError"
            ? Console.error(`soad: ${error.message}`)
            : Effect.forEach(error.errors, (line) => Console.error(`soad: ${line}`), { discard: true })
        )
      )
  }
  const { command: commandAfterDashes, own } = splitArgv(args)
  const argv = ["node", "soad", ...own, ...(commandAfterDashes !== undefined ? ["--", ...commandAfterDashes] : [])]
  const cli = Command.run(make(commandAfterDashes), { name: "soad", version })
  const missing = missingValue(own)
  return (missing !== undefined ? Effect.fail(usage(missing)) : cli(argv)).pipe(
    oneLineErrors,
    Effect.tapError((error) =>
      ValidationError.isValidationError(error)
        ? Effect.void
        : error._tag === "UsageError"
        ? Console.error(`soad: ${error.message} (see soad --help)`)
        : error._tag === "ConfigError"
        ? Effect.forEach(error.errors, (line) => Console.error(`soad: ${line}`), { discard: true })
        : Console.error(`soad: ${error.message}`)
    ),
    Effect.provide(CliConfig.layer({ isCaseSensitive: true, showBuiltIns: false, showTypes: false }))
  )
}

/** The exit code for a failure of `run`. */
export const exitCode = (error: unknown): number =>
  ValidationError.isValidationError(error) || (error as { _tag?: string })._tag === "UsageError" ||
    (error as { usage?: boolean }).usage === true
    ? 2
    : 1

/** Second SIGINT/SIGTERM while stopping: SIGKILL to every app group now (the first is runMain's). */
export const killOnSecondSignal: Layer.Layer<never, never, ProcessService> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const processes = yield* ProcessService
    let received = 0
    const onSignal = () => {
      received += 1
      if (received >= 2) Effect.runFork(processes.killAll)
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.on("SIGINT", onSignal)
        process.on("SIGTERM", onSignal)
      }),
      () =>
        Effect.sync(() => {
          process.off("SIGINT", onSignal)
          process.off("SIGTERM", onSignal)
        })
    )
  })
)

/** Signals soad passes on to the running apps' process groups (apps use them to reload or reopen logs). */
export const forwardedSignals = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"] as const

/** In config mode SIGHUP is soad's own (reload); the others are still passed on. */
export const configSignals = ["SIGUSR1", "SIGUSR2", "SIGWINCH"] as const

/** Passes these signals on to every running app's process group, until the scope closes. */
export const forwardSignals = (
  signals: ReadonlyArray<NodeJS.Signals>
): Effect.Effect<void, never, ProcessService | Scope.Scope> => Effect.gen(function*() {
  const processes = yield* ProcessService
  const runtime = yield* Effect.runtime<never>()
  const handlers = signals.map((name) => {
    const signal = Either.getOrThrow(Signal.parse(name))
    const handler = () => {
      Runtime.runFork(runtime)(
        event("info", "signal", `passing ${name} on to the app`, { signal: name }).pipe(
          Effect.zipRight(processes.signalAll(signal))
        )
      )
    }
    return [name, handler] as const
  })
  yield* Effect.acquireRelease(
    Effect.sync(() => handlers.forEach(([name, handler]) => process.on(name, handler))),
    () => Effect.sync(() => handlers.forEach(([name, handler]) => process.off(name, handler)))
  )
})

/** The services the command needs. */
export type Services = SocketService | ProcessService
