/**
 * The command line as an @effect/cli Command tree: `soad` runs one app (`soad -s /run/app.sock -t 240 -S TERM --
 * gunicorn app:app`) or every service of a config file (`soad -c FILE`), and its subcommands `check` (validates a
 * file) and `status`, `wake`/`start`, `sleep`/`stop`, `restart`, `reload` and `logs` (talk to a running soad; the
 * light path, cli/light.ts, runs the usual lines of these without this tree, and both run cli/controlVerbs.ts). A
 * run's usual lines (`soad -s PATH -- app`, `soad -c FILE`) are parsed without this tree too (cli/runArgs.ts), and
 * both parsers' runs are cli/serve.ts's; the program loads this module only for the lines that need it
 * (cli/main.ts).
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as CommandDescriptor from "@effect/cli/CommandDescriptor"
import * as CommandDirective from "@effect/cli/CommandDirective"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Option from "effect/Option"
import * as ServiceConfig from "../ServiceConfig.js"
import type * as ControlArgs from "./controlArgs.js"
import { defaultLines } from "./controlArgs.js"
import * as ControlVerbs from "./controlVerbs.js"
import * as Help from "./help.js"
import * as ConfigFile from "../ConfigFile.js"
import * as AppLogs from "../observe/appLogs.js"
import * as Durations from "../config/durations.js"
import * as Fields from "../config/fields.js"
import * as Users from "../os/users.js"
import * as Logging from "../Logging.js"
import * as RunArgs from "./runArgs.js"
import * as Serve from "./serve.js"
import { stdout } from "./stdout.js"

export { UsageError } from "./serve.js"
export type { Requirements } from "./serve.js"

/** A control command failed and has said why (cli/controlVerbs.ts); exit `code`. */
export class Reported extends Data.TaggedError("Reported")<{ readonly code: number }> {}

/** package.json's version, defined by the build (cli/bundle.mjs); undefined when run from the sources. */
declare const SOAD_VERSION: string | undefined

/**
 * soad's version, as `--version` prints it: package.json's, the one source. The bundle has it built in; from the
 * sources (tests, dist/cli) package.json is two folders up from this module.
 */
export const version: string = typeof SOAD_VERSION === "string"
  ? SOAD_VERSION
  : (JSON.parse(Fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { readonly version: string }).version

const usage = Serve.usage

/** A flag's value refused by its field's parser, as @effect/cli reports a bad value (exit 2). */
const refuse = (flag: string, input: string | number, refusal: Fields.Refusal) =>
  ValidationError.invalidValue(HelpDoc.p(Fields.flagMessage(flag, input, refusal)))

/** Checks an option's value with its field's parser; `flag` is the name the refusal gives. */
const checked = <A>(flag: string, parse: Fields.Parse<A>) => <I extends string | number>(self: Options.Options<I>) =>
  Options.mapEffect(self, (value) => Either.mapLeft(parse(value), (refusal) => refuse(flag, value, refusal)))

/** The same for an optional option. */
const checkedOptional = <A>(flag: string, parse: Fields.Parse<A>) =>
<I extends string | number>(self: Options.Options<Option.Option<I>>) =>
  Options.mapEffect(self, (value) =>
    Option.isNone(value)
      ? Either.right(Option.none<A>())
      : Either.mapBoth(parse(value.value), {
        onLeft: (refusal) => refuse(flag, value.value, refusal),
        onRight: Option.some
      }))

const durationForms = "seconds (90, 0.5) or with units (90s, 5m, 1h30m, 250ms)"

/** A default duration in help, in seconds as a flag takes it: `60`, `0.5`. */
const seconds = (duration: Duration.Duration): string => String(Duration.toSeconds(duration))

const defaults = ServiceConfig.defaults

/**
 * A duration option, as typed: the rule its config-file key shares (config/durations.ts) checks it when the
 * service's settings are resolved (config/serviceInput.ts).
 */
const duration = (field: Durations.Field, flag: string, description: string, fallback: Duration.Duration) => {
  const option = Options.text(field).pipe(
    Options.withPseudoName("DURATION"),
    Options.withDescription(`${description}: ${durationForms}. Default: ${seconds(fallback)}.`)
  )
  return (flag.startsWith("--") ? option : Options.withAlias(option, flag.slice(1))).pipe(Options.optional)
}

const configFile = Options.file("config").pipe(
  Options.withAlias("c"),
  Options.withPseudoName("FILE"),
  Options.withDescription("Run every service of a TOML config file (instead of -s/-l and a command); SIGHUP reloads it."),
  Options.optional
)
const socket = Options.text("socket").pipe(
  Options.withAlias("s"),
  Options.withPseudoName("PATH"),
  Options.withDescription("A UNIX socket to listen on (repeatable): the app gets it at fd 3. --socket=PATH works too."),
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
const maxHeld = Options.text("max-held").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(
    "Proxy mode: hold at most N connections while the app starts; more wait in the backlog. Default: the fd limit / 8, at most 1024."
  ),
  Options.optional
)
const waitingPage = Options.text("waiting-page").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription(
    "Proxy mode, HTTP/1.x (no TLS): a browser navigation (GET or HEAD, Accept: text/html) that has waited this long for " +
      "the starting app gets a page (503, Retry-After) that opens the app by itself once it is up; other requests keep " +
      "waiting. Linux only."
  ),
  Options.optional
)
const waitingPageFile = Options.text("waiting-page-file").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription(
    "Serve this HTML file (at most 64 KiB, UTF-8) as the waiting page; {{service}} in it becomes the service's name. " +
      "Read at start (and on reload with -c)."
  ),
  Options.optional
)
const acceptOption = Options.boolean("accept").pipe(
  Options.withDescription(
    "A process per connection (inetd, systemd Accept=yes): soad accepts each connection and runs the command with it " +
      "as stdin, stdout and fd 3 (LISTEN_FDS=1; REMOTE_ADDR, REMOTE_PORT for TCP). Each instance ends with its " +
      "connection: -t does not apply."
  )
)
const maxConnections = Options.text("max-connections").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(
    `With --accept: at most N instances at once; more connections wait in the backlog. Default: ${defaults.maxConnections}.`
  ),
  Options.optional
)
const maxConnectionsPerSource = Options.text("max-connections-per-source").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(
    "With --accept: at most N instances at once for one source (a client's IP address; a UNIX peer's uid); a " +
      "connection beyond it is closed at once. Default: half of --max-connections per IP address (set it to " +
      "--max-connections behind a proxy), --max-connections per UNIX uid."
  ),
  Options.optional
)
const maxAcceptRate = Options.text("max-accept-rate").pipe(
  Options.withPseudoName("N/DURATION"),
  Options.withDescription(
    "With --accept: start at most N instances per DURATION (50/1s, 50/s, 600/1m): bursts of N, then one every " +
      `DURATION/N; beyond it connections wait in the backlog. Default: ${defaults.maxAcceptRate.count}/${seconds(defaults.maxAcceptRate.per)}s.`
  ),
  Options.optional
)
const timeUntilStop = duration("time-until-stop", "-t", "Time without activity before the app is stopped", defaults.idleTimeout)
const shutdownSignal = Options.text("shutdown-signal").pipe(
  Options.withAlias("S"),
  Options.withPseudoName("SIGNAL"),
  Options.withDescription(
    `The signal that asks the app to stop: a name (TERM, SIGINT, quit) or a number (15). Default: ${defaults.shutdownSignal.name.slice(3)}.`
  ),
  Options.optional
)
const stopTimeout = duration(
  "stop-timeout",
  "--stop-timeout",
  "Time the app may take to exit after the shutdown signal before it gets SIGKILL",
  defaults.stopTimeout
)
const startTimeout = duration(
  "start-timeout",
  "--start-timeout",
  "An app that has not accepted the waiting connection by then is stopped, a failed start",
  defaults.startTimeout
)
const readyOption = Options.choice("ready", ServiceConfig.readyModes).pipe(
  Options.withDescription(
    "When a started app is ready: accept (it accepts the connection; proxy: its port listens) or notify (it sends " +
      `READY=1 on the NOTIFY_SOCKET soad gives it; proxy: and its port listens). Default: ${defaults.ready}.`
  ),
  Options.optional
)
const idleIgnoresOpenConnections = Options.boolean("idle-ignores-open-connections").pipe(
  Options.withDescription(
    "Stop the app after -t without new connections even while accepted ones are still open (the original's rule)."
  )
)
const minUptime = duration("min-uptime", "--min-uptime", "A run shorter than this counts as a crash, and the next start backs off", defaults.minUptime)
const maxBackoff = duration(
  "max-backoff",
  "--max-backoff",
  `The longest wait between starts of a crashing app (from ${seconds(defaults.initialBackoff)} s, doubling)`,
  defaults.maxBackoff
)
const startLimitBurst = Options.text("start-limit-burst").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(
    "After N failed starts within --start-limit-interval the service is failed: what waits is refused (a proxied HTTP " +
      `client gets a 503) until soad wake, soad restart or a reload. 0: retry for ever. Default: ${defaults.startLimitBurst}.`
  ),
  Options.optional
)
const startLimitInterval = duration("start-limit-interval", "--start-limit-interval", "The window --start-limit-burst counts failed starts in", defaults.startLimitInterval)
const backlog = Options.text("backlog").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(`The listen(2) backlog of every listener: connections that wait while the app starts. Default: ${defaults.backlog}.`),
  Options.optional
)
const socketMode = Options.text("socket-mode").pipe(
  Options.withPseudoName("OCTAL"),
  Options.withDescription(
    `Permissions of the UNIX socket files soad creates, such as 0660. Default: 0${Fields.defaultSocketMode.toString(8)}, whatever the umask.`
  ),
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
const defaultLogFormat: Logging.Format = "text"
const logFormat = Options.choice("log-format", Logging.formats).pipe(
  Options.withDescription(`Log lines for people (text) or one JSON object per line (json) for log collectors. Default: ${defaultLogFormat}.`),
  Options.withDefault(defaultLogFormat)
)
const metrics = Options.text("metrics").pipe(
  Options.withPseudoName("ADDR"),
  Options.withDescription("Serve Prometheus metrics over HTTP at HOST:PORT or a UNIX socket path (GET /metrics)."),
  Options.optional,
  checkedOptional("--metrics", (input) => Fields.address(process.cwd())(input))
)
const control = Options.text("control").pipe(
  Options.withPseudoName("PATH"),
  Options.withDescription(
    "The control socket for soad status, wake, sleep, restart, reload and logs. Default: $XDG_RUNTIME_DIR/soad/NAME.sock " +
      "(else /run/soad/NAME.sock), where those commands find every running soad: NAME is --name, else derived from -c " +
      "FILE, else from the app and its first listener."
  ),
  Options.optional
)
/** `--name`, named `pseudo` in the usage. */
const instanceOption = (pseudo: string, description: string) =>
  Options.text("name").pipe(
    Options.withPseudoName(pseudo),
    Options.withDescription(description),
    Options.optional,
    checkedOptional("--name", RunArgs.instanceRef)
  )
const instance = instanceOption(
  "NAME",
  "This soad's instance name: its control socket is $XDG_RUNTIME_DIR/soad/NAME.sock, else /run/soad/NAME.sock. " +
    "Default: derived from -c FILE (apps-1f0c9a2e), else from the app's name and its first listener (gunicorn-5d41c0a2)."
)
const defaultLogLevel: Logging.Level = "info"
const logLevel = Options.choice("log-level", Logging.levels).pipe(
  Options.withDescription(`How much soad logs on stderr. Default: ${defaultLogLevel}.`),
  Options.withDefault(defaultLogLevel)
)
const command = Args.text({ name: "command" }).pipe(
  Args.withDescription("The app's command and its arguments, after --, passed on verbatim and run without a shell."),
  Args.repeated
)

const options = {
  configFile,
  socket,
  listen,
  upstream,
  maxHeld,
  waitingPage,
  waitingPageFile,
  accept: acceptOption,
  maxConnections,
  maxConnectionsPerSource,
  maxAcceptRate,
  timeUntilStop,
  shutdownSignal,
  stopTimeout,
  startTimeout,
  ready: readyOption,
  idleIgnoresOpenConnections,
  minUptime,
  maxBackoff,
  startLimitBurst,
  startLimitInterval,
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
  instance,
  command
}

/** The options of a run, as the tree defines them (test/unit/runArgs.test.ts compares RunArgs.flags with them). */
export const runOptions = options

/** What the tree parses of a run's flags: the light run path's Parsed (cli/runArgs.ts), checked equal below. */
export type Parsed = RunArgs.Parsed

/** The two types are one: a flag added to one of them and not the other fails to compile here. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const parsedAgrees: Same<Command.Command.ParseConfig<typeof options>, RunArgs.Parsed> = true
void parsedAgrees

export const splitArgv = RunArgs.splitArgv

const valueFlags = RunArgs.valueFlags

/** The options whose choices @effect/cli checks itself, to name them in its refusals (explain). */
const choiceFlags: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
  ["--log-level", Logging.levels],
  ["--log-format", Logging.formats],
  ["--ready", ServiceConfig.readyModes]
]

/** The value given to `flag` last in `own`. */
const valueOf = (own: ReadonlyArray<string>, flag: string): string | undefined => {
  const at = own.lastIndexOf(flag)
  return at >= 0 ? own[at + 1] : undefined
}

/**
 * A parse error of @effect/cli as one line in soad's words, or undefined if it says nothing. `own` is the command
 * line as the parser saw it (splitArgv). The library refuses a choice with only `Expected one of the following
 * cases: accept, notify`: soad names the flag and the value given.
 */
export const explain = (error: ValidationError.ValidationError, own: ReadonlyArray<string>): string | undefined => {
  if (ValidationError.isInvalidValue(error)) {
    for (const [flag, values] of choiceFlags) {
      const value = valueOf(own, flag)
      if (value !== undefined && !values.includes(value)) return `${flag}: '${value}' is not one of ${values.join(", ")}`
    }
  }
  const text = Help.render(error.error, true).replace(/\s+/g, " ").trim()
  return text === "" ? undefined : text
}


/** `soad check FILE`: validates the file and what it names on this machine, prints what would run; exit 0 or 1. */
export const check = (path: string) =>
  ConfigFile.check(path, Users.resolver).pipe(
    Effect.tap(({ file, warnings }) =>
      Console.log(`${ConfigFile.describe(file)}\n\n${warnings.map((warning) => `warning: ${warning}\n`).join("")}${path}: OK`))
  )

/**
 * Runs a control command the way the light path does (cli/controlVerbs.ts), for the lines only this tree parses;
 * a failure has been printed, and fails with its exit code.
 */
const runVerbs = (command: ControlArgs.ControlCommand): Effect.Effect<void, Reported> =>
  Effect.flatMap(
    Effect.promise((signal) =>
      ControlVerbs.run(command, { out: stdout(), err: process.stderr, env: process.env, signal })
    ),
    (code) => code === 0 ? Effect.void : Effect.fail(new Reported({ code }))
  )

const json = Options.boolean("json").pipe(
  Options.withDescription("Print every service (of every soad found) as a JSON array, each with its instance.")
)
const all = Options.boolean("all").pipe(
  Options.withDescription(
    "Show every service: beyond 50, the table leaves out the stopped ones unless asked for all (or by NAME)."
  )
)
const serviceName = Args.text({ name: "NAME" }).pipe(Args.withDescription("The service, as soad status names it."))
const servicePatterns = Args.text({ name: "NAME" }).pipe(
  Args.withDescription(
    "Only these services, and their socket files' mode and owner; * and ? match any characters and one ('blog*')."
  ),
  Args.repeated
)
const logsService = Args.text({ name: "NAME" }).pipe(
  Args.withDescription("The service, as soad status names it. Default: every service, each line after its [name]."),
  Args.optional
)
const logLines = Options.text("lines").pipe(
  Options.withAlias("n"),
  Options.withPseudoName("N"),
  Options.withDescription(`How many of the latest lines to print (soad keeps up to ${AppLogs.ringLines} per service). Default: ${defaultLines}.`),
  Options.withDefault(String(defaultLines)),
  checked("-n", (input) =>
    /^\d{1,9}$/.test(String(input))
      ? Either.right(Number(input))
      : Either.left({ _tag: "Expected", expected: "a whole number, 0 or more" }))
)
const follow = Options.boolean("follow").pipe(
  Options.withAlias("f"),
  Options.withDescription("Keep printing new lines as the app writes them, until interrupted (Ctrl-C).")
)
const checkedFile = Args.file({ name: "FILE" }).pipe(Args.withDescription("The TOML config file to check."))
const instanceConfig = Options.file("config").pipe(
  Options.withAlias("c"),
  Options.withPseudoName("FILE"),
  Options.withDescription("Talk to the soad running this config file (its control socket is derived from it)."),
  Options.optional
)
/** The options that say which soad a control subcommand talks to. */
const which = {
  control,
  instance: instanceOption("INSTANCE", "Talk to the soad started with --name INSTANCE."),
  config: instanceConfig
}

/** What soad is, for the top of its help. */
const description = "Socket activator/deactivator: holds the listening sockets, starts the app on the first connection " +
  "with the sockets at fd 3, 4, … (LISTEN_FDS), and stops it after a time without activity."

/**
 * `soad` as an @effect/cli Command tree: run (the root), check, status, wake/start, sleep/stop, restart, reload
 * and logs. `appCommand` is the app's command, split off after `--` by splitArgv. `live` provides the services a
 * run needs: only the run builds it, so help, versions, check and the control subcommands never load the native
 * binding or start a guard. `control` runs a parsed control command, `serve` a parsed run (tests pass ones that
 * record them).
 */
export const make = (
  appCommand: ReadonlyArray<string> | undefined,
  live: Layer.Layer<Serve.Requirements>,
  control: (command: ControlArgs.ControlCommand) => Effect.Effect<void, Reported> = runVerbs,
  afterStart: () => void = () => {},
  serve: typeof Serve.serve = Serve.serve
) => {
  const root = Command.make("soad", options, (parsed) => Effect.provide(serve(parsed, appCommand, afterStart), live)).pipe(
    Command.withDescription(description)
  )
  /**
   * A subcommand with flags of the run: `soad -s PATH sleep 30` means the app `sleep`, which goes after --. A
   * control subcommand (`withConfig`) may follow -c FILE: `soad -c FILE status` asks the soad running FILE.
   */
  const alone = (name: string, withConfig = false) =>
    Effect.flatMap(root, (parent) =>
      parent.socket.length > 0 || parent.listen.length > 0 || (Option.isSome(parent.configFile) && !withConfig) ||
        appCommand !== undefined
        ? Effect.fail(usage(`'${name}' is a subcommand of soad: to run it as the app, give it after --, e.g. soad -s PATH -- ${name}`))
        : parent.command.length > 0
        ? Effect.fail(usage(`unexpected argument '${parent.command[0]}' for soad ${name}`))
        : Effect.succeed(parent))
  /** Which soad a control subcommand talks to: its own --control, --name or -c, else one given before it. */
  const whichOf = (name: string, own: Command.Command.ParseConfig<typeof which>) =>
    Effect.map(alone(name, true), (parent): ControlArgs.Which => {
      const pick = <A>(mine: Option.Option<A>, theirs: Option.Option<A>) => Option.getOrUndefined(Option.orElse(mine, () => theirs))
      const control = pick(own.control, parent.control)
      const name = pick(own.instance, parent.instance)
      const config = pick(own.config, parent.configFile)
      return {
        ...(control === undefined ? {} : { control }),
        ...(name === undefined ? {} : { name }),
        ...(config === undefined ? {} : { config })
      }
    })
  const checkCommand = Command.make("check", { file: checkedFile }, ({ file }) =>
    Effect.zipRight(alone("check"), check(file))).pipe(
      Command.withDescription("Validate a config file and print what would run; exit 0 if it is valid, 1 if not.")
    )
  const status = Command.make("status", { json, all, patterns: servicePatterns, ...which }, (own) => {
    // @effect/cli takes an unknown option (`--jsn`) for one more NAME: it is a mistyped option.
    const option = own.patterns.find((pattern) => pattern.startsWith("-"))
    return option !== undefined
      ? Effect.fail(usage(`unknown option '${option}' for soad status`))
      : Effect.flatMap(whichOf("status", own), (found) =>
        control({ verb: "status", json: own.json, all: own.all, patterns: own.patterns, which: found }))
  }).pipe(
      Command.withDescription(
        "Show the services of the running soad (of each, when several run): a summary line, then state, pid, uptime, " +
          "idle time, memory, RAM saved and the last error of each."
      )
    )
  const order = (typed: string, verb: "wake" | "sleep" | "restart", text: string) =>
    Command.make(typed, { name: serviceName, ...which }, (own) =>
      Effect.flatMap(whichOf(typed, own), (found) =>
        control({ verb, typed, service: own.name, which: found }))).pipe(Command.withDescription(text))
  const reload = Command.make("reload", which, (own) =>
    Effect.flatMap(whichOf("reload", own), (found) => control({ verb: "reload", which: found }))).pipe(
      Command.withDescription(
        "Reload a -c FILE soad's config file (as SIGHUP does), wait for it and print what it did; exit 1 if the file " +
          "was refused (its errors are printed) or a service could not be applied."
      )
    )
  const logs = Command.make("logs", { name: logsService, lines: logLines, follow, ...which }, (own) =>
    Effect.flatMap(whichOf("logs", own), (found) =>
      control({
        verb: "logs",
        service: Option.getOrUndefined(own.name),
        lines: own.lines,
        follow: own.follow,
        which: found
      }))).pipe(
      Command.withDescription(
        "Print the latest lines a service's app wrote (stdout and stderr), or every service's in time order; -f follows new ones."
      )
    )
  return root.pipe(Command.withSubcommands([
    checkCommand,
    status,
    order("wake", "wake", "Start a service's app now, as a connection would."),
    order("start", "wake", "The same as wake."),
    order("sleep", "sleep", "Stop a service's app now; the next connection starts it again."),
    order("stop", "sleep", "The same as sleep."),
    order("restart", "restart", "Stop a service's app now and start it again (sleep, then wake)."),
    reload,
    logs
  ]))
}

/** Examples, at the end of `soad --help`. */
const examples = HelpDoc.blocks([
  HelpDoc.h1("EXAMPLES"),
  HelpDoc.descriptionList([
    [Span.code("soad -s /run/app.sock -t 240 -S TERM -- gunicorn app:app"), HelpDoc.p(
      "Start gunicorn on the first connection to /run/app.sock; stop it with SIGTERM after 240 s without activity."
    )],
    [Span.code("soad -l http=127.0.0.1:8080 -t 5m -- ./server"), HelpDoc.p("A TCP listener named http; stop after 5 minutes.")],
    [Span.code("soad -l :8080 --upstream auto -- node server.js"), HelpDoc.p(
      "Proxy mode, for an app that binds its own port (given to it as PORT)."
    )],
    [Span.code("soad -l :7000 --accept --max-connections 16 -- ./handler"), HelpDoc.p(
      "A process per connection, as inetd: the connection is the handler's stdin and stdout; 16 at once, the rest wait."
    )],
    [Span.code("soad -c /etc/soad/apps.toml"), HelpDoc.p("Every service of a config file; soad check FILE validates one.")],
    [Span.code("soad status"), HelpDoc.p(
      "What the running soads do; soad start NAME, soad stop NAME and soad restart NAME steer an app now."
    )],
    [Span.code("soad reload"), HelpDoc.p("Read a -c FILE soad's config file again and print what changed.")],
    [Span.code("soad logs -f"), HelpDoc.p("Follow every app's output, each line after its [service].")],
    [Span.code("soad --completions bash"), HelpDoc.p("A completion script for bash (also sh, zsh, fish).")]
  ])
])

/** Whether to print plain text: stdout is no terminal, or NO_COLOR is set to something (no-color.org). */
const plainOutput = (): boolean => stdout().isTTY !== true || (process.env.NO_COLOR ?? "") !== ""

/** The names of the built-in options whose output soad prints itself. */
const builtInNames: ReadonlySet<string> = new Set(["--help", "-h", "--completions", "--version"])

/** The command tree `make` builds. */
type Soad = ReturnType<typeof make>

/**
 * Prints what a built-in option of @effect/cli asks for, soad's way (cli/help.ts): help, a completion script or
 * the version; false if the line asks for none of them. The library's own parse decides (`soad status --json
 * --help` is status's help), and fails with its ValidationError on a bad line.
 */
const builtIn = (soad: Soad, own: ReadonlyArray<string>, plain: boolean) =>
  Effect.gen(function*() {
    // A line without their names asks for none: a run is parsed once, by Command.run (a parse takes 5-30 ms).
    if (!own.some((arg) => builtInNames.has(arg))) return false
    const config = yield* CliConfig.CliConfig
    const directive = yield* CommandDescriptor.parse(soad.descriptor, ["soad", ...own], config)
    if (!CommandDirective.isBuiltIn(directive)) return false
    const option = directive.option
    switch (option._tag) {
      case "ShowHelp": {
        // The subcommand asked about is the line's first word that names one, as the library splits the line.
        const subcommands = Command.getSubcommands(soad)
        const subcommand = own.find((arg) => HashMap.has(subcommands, arg))
        const descriptor = subcommand === undefined ? Option.none() : HashMap.get(subcommands, subcommand)
        const doc = Help.page({
          name: "soad",
          version,
          subcommand,
          usage: Option.match(descriptor, { onNone: () => option.usage, onSome: CommandDescriptor.getUsage }),
          help: Option.match(descriptor, {
            onNone: () => option.helpDoc,
            onSome: (command) => CommandDescriptor.getHelp(command, config)
          }),
          examples
        }, config)
        yield* Console.log(Help.render(doc, plain))
        return true
      }
      case "ShowCompletions": {
        const shell = option.shellType
        const lines = yield* (shell === "bash"
          ? Command.getBashCompletions(soad, "soad")
          : shell === "zsh"
          ? Command.getZshCompletions(soad, "soad")
          : Command.getFishCompletions(soad, "soad"))
        yield* Console.log(Help.completions(shell, lines, valueFlags))
        return true
      }
      case "ShowVersion": {
        yield* Console.log(version)
        return true
      }
      default:
        return false // --log-level first on a subcommand's line, --wizard: the library's
    }
  })

/**
 * Runs `effect` without @effect/cli's own copies of its errors: it prints each as a document (in colour) before it
 * fails with it, and `run` says each failure once, in soad's words.
 */
const withoutLibraryErrors = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Console.consoleWith((console) => Effect.withConsole(effect, { ...console, error: () => Effect.void }))

/** How `run` prints and steers: help without colours (`plain`), the runner of control commands (`control`). */
export interface RunOptions {
  /** Default: when stdout is no terminal, or NO_COLOR is set. */
  readonly plain?: () => boolean
  readonly control?: (command: ControlArgs.ControlCommand) => Effect.Effect<void, Reported>
  /** Called once a run has started and settled (os/gc.ts), after its first full GC. */
  readonly started?: () => void
  /** What runs a parsed run (tests pass one that records it). Default: Serve.serve. */
  readonly serve?: typeof Serve.serve
}

/**
 * Parses `args` (without node and the script) and runs soad, a run with the services of `live` (built only for
 * a run). Fails with UsageError or a ValidationError (exit 2), ConfigError, ControlError or ListenError (exit 1),
 * or Reported (a control command's code); the message has been printed.
 */
export const run = (args: ReadonlyArray<string>, live: Layer.Layer<Serve.Requirements>, options: RunOptions = {}) => {
  const { command: appCommand, own } = splitArgv(args)
  const soad = make(appCommand, live, options.control, options.started, options.serve)
  const cli = Command.run(soad, { name: "soad", version })
  return builtIn(soad, own, (options.plain ?? plainOutput)()).pipe(
    Effect.flatMap((printed) => printed ? Effect.void : withoutLibraryErrors(cli(["node", "soad", ...own]))),
    Effect.tapError((error) => {
      if (ValidationError.isValidationError(error)) {
        const line = explain(error, own)
        return line === undefined ? Effect.void : Console.error(`soad: ${line} (see soad --help)`)
      }
      return error._tag === "Reported" ? Effect.void : Serve.report(error)
    }),
    Effect.provide(CliConfig.layer({ isCaseSensitive: true, showBuiltIns: false, showTypes: false }))
  )
}

/** The exit code for a failure of `run`. */
export const exitCode = (error: unknown): number =>
  error instanceof Reported ? error.code : ValidationError.isValidationError(error) ? 2 : Serve.exitCode(error)

