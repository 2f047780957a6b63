/**
 * A run: soad on its parsed flags, one app (`soad -s PATH -- app`) or every service of a config file (`soad -c
 * FILE`), until interrupted. Both parsers of a run's line end here: the light run path's (cli/runArgs.ts, which a
 * service manager's start line takes) and the command tree's (cli/command.ts, for everything else), so a run is
 * the same whichever parsed it. A service's flags are taken as typed and resolved by the same function as a config
 * file's table (config/serviceInput.ts: one parser per field, every rule across fields written once), so the core
 * sees only a typed ServiceConfig. Nothing here loads @effect/cli.
 *
 * @internal
 */
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Path from "node:path"
import * as Activator from "../Activator.js"
import type { AppNotify } from "../AppNotify.js"
import * as Budget from "../Budget.js"
import * as ServiceInput from "../config/serviceInput.js"
import { unitOf } from "../core/lifecycle.js"
import * as Reloads from "../core/reloads.js"
import * as Logging from "../Logging.js"
import { event } from "../Logging.js"
import * as AppLogs from "../observe/appLogs.js"
import * as Control from "../observe/control.js"
import * as ControlPaths from "../observe/controlPaths.js"
import type { ReloadOutcome } from "../observe/controlProtocol.js"
import * as Metrics from "../observe/metrics.js"
import { keepStatus, notify, reloading } from "../observe/systemd.js"
import { settle } from "../os/gc.js"
import * as Users from "../os/users.js"
import { ProcessService } from "../ProcessService.js"
import * as Registry from "../Registry.js"
import type { RelayService } from "../RelayService.js"
import * as ServiceConfig from "../ServiceConfig.js"
import type * as Services from "../Services.js"
import * as Signal from "../Signal.js"
import type { SocketService } from "../SocketService.js"
import { type Parsed, valueFlags } from "./runArgs.js"

/** The command line is wrong; `message` says what and how to fix it. Exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** A usage error saying `message`. */
export const usage = (message: string) => new UsageError({ message })

/** The service's settings the flags give, keyed as a config file's (only those given). */
export const serviceInput = (parsed: Parsed, argv: ReadonlyArray<string>): ServiceInput.ServiceInput => {
  const given: Record<string, unknown> = {
    socket: parsed.socket.length > 0 ? parsed.socket : undefined,
    listen: parsed.listen.length > 0 ? parsed.listen : undefined,
    command: argv,
    upstream: parsed.upstream,
    "max-held": parsed.maxHeld,
    "waiting-page": parsed.waitingPage,
    "waiting-page-file": parsed.waitingPageFile,
    accept: parsed.accept ? true : undefined,
    "max-connections": parsed.maxConnections,
    "max-connections-per-source": parsed.maxConnectionsPerSource,
    "max-accept-rate": parsed.maxAcceptRate,
    "time-until-stop": parsed.timeUntilStop,
    "shutdown-signal": parsed.shutdownSignal,
    "stop-timeout": parsed.stopTimeout,
    "start-timeout": parsed.startTimeout,
    ready: parsed.ready,
    "idle-ignores-open-connections": parsed.idleIgnoresOpenConnections ? true : undefined,
    "min-uptime": parsed.minUptime,
    "max-backoff": parsed.maxBackoff,
    "start-limit-burst": parsed.startLimitBurst,
    "start-limit-interval": parsed.startLimitInterval,
    backlog: parsed.backlog,
    "socket-mode": parsed.socketMode,
    "socket-user": parsed.socketUser,
    "socket-group": parsed.socketGroup,
    user: parsed.user,
    group: parsed.group
  }
  const input: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(given)) {
    const plain = Option.isOption(value) ? Option.getOrUndefined(value) : value
    if (plain !== undefined) input[key] = plain
  }
  return input as ServiceInput.ServiceInput
}

/**
 * Turns parsed flags into a ServiceConfig, by the rules a config file's service goes through
 * (config/serviceInput.ts): the first problem is the usage error. `appCommand` is what came after `--`.
 */
export const toConfig = (
  parsed: Parsed,
  appCommand: ReadonlyArray<string> | undefined,
  resolver: ServiceInput.Resolver
): Either.Either<ServiceConfig.ServiceConfig, UsageError> =>
  Either.gen(function*() {
    const before = parsed.command
    // A flag that was not taken as one: its value is missing (it ends soad's part of the line), or it is unknown.
    if (before.length > 0 && valueFlags.has(before[0]!)) return yield* Either.left(usage(`option ${before[0]} needs a value`))
    if (before.length > 0 && (appCommand !== undefined || before[0]!.startsWith("-"))) {
      return yield* Either.left(
        usage(
          before[0]!.startsWith("-")
            ? `unknown option '${before[0]}'`
            : `unexpected argument '${before[0]}' before --: the app's command goes after --`
        )
      )
    }
    const input = serviceInput(parsed, appCommand ?? before)
    return yield* Either.mapLeft(
      ServiceInput.resolve(input, {
        // --name names the service (logs, journal, status, metrics) as well as this soad; else the command's name.
        name: Option.getOrUndefined(parsed.instance),
        own: new Set(Object.keys(input)),
        naming: ServiceInput.flagNaming,
        resolver,
        baseDir: process.cwd()
      }),
      (problems) => usage(ServiceInput.flagMessage(problems[0]!))
    )
  })

/**
 * A single app's instance name when --name does not give one: its cgroup's (the app's name and a hash of its first
 * listener, `gunicorn-5d41c0a2`), the same at every start of the same soad, and another for each listener, so
 * two single-app soads never share a control socket.
 */
const singleInstance = (config: ServiceConfig.ServiceConfig): string => {
  const unit = unitOf(config)
  return ControlPaths.instanceName.test(unit) ? unit : `soad-${unit}`.slice(0, 64)
}

/**
 * Where this soad's control socket is: --control PATH, else its instance's in the directory every soad's is in
 * (where the control commands look): the instance is --name, else derived from -c FILE, else `single`'s.
 */
const controlSocket = (parsed: Parsed, single: string): string =>
  Option.match(parsed.control, {
    onSome: (path) => Path.resolve(path),
    onNone: () =>
      ControlPaths.socketOf(
        Option.getOrElse(Option.orElse(parsed.instance, () => Option.map(parsed.configFile, ControlPaths.instanceOf)), () => single)
      )
  })

/**
 * The control socket (answering `soad reload` with `reload`, in config mode) and the metrics endpoint, as the flags
 * ask, until the scope closes.
 */
const observability = (parsed: Parsed, single: string, reload?: Effect.Effect<ReloadOutcome>) =>
  Effect.gen(function*() {
    const explicit = Option.isSome(parsed.control)
    yield* Control.serve(controlSocket(parsed, single), explicit, undefined, reload)
    if (Option.isSome(parsed.metrics)) yield* Metrics.serve(parsed.metrics.value)
  })

/**
 * READY=1 now (every listener is bound), then STATUS= kept current; STOPPING=1 first thing when the scope begins
 * to close; and, a moment later, `afterStart` (bin.ts saves the code cache of what the start compiled), then one
 * full GC that also drops the start's bytecode (the cache is made from it first), so the memory start-up used goes
 * back to the system before soad sleeps.
 */
const ready = (afterStart: () => void, services: number) =>
  Effect.zipRight(
    notify("READY=1"),
    Effect.zipRight(
      Effect.addFinalizer(() => notify("STOPPING=1")),
      Effect.zipRight(
        Effect.zipRight(registered(services), keepStatus),
        Effect.forkScoped(Effect.delay(Effect.zipRight(Effect.sync(afterStart), settle(true)), "1 second"))
      )
    )
  )

/**
 * Until `count` services are in the Registry, at most 1 s: each registers from its own fiber once its mode is set
 * up, so the first STATUS= would otherwise count only those that had ("0 of 0 apps running").
 */
const registered = (count: number): Effect.Effect<void, never, Registry.Registry> =>
  Effect.flatMap(Registry.Registry, (registry) =>
    Effect.gen(function*() {
      while ((yield* registry.services).length < count) yield* registry.nextChange
    })).pipe(Effect.timeoutOption("1 second"), Effect.asVoid)

/** Runs soad on parsed flags: one Activator, or the Services of a config file, until interrupted. */
export const serve = (parsed: Parsed, appCommand: ReadonlyArray<string> | undefined, afterStart: () => void) =>
  Effect.gen(function*() {
    const registry = yield* Registry.make
    const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      effect.pipe(
        Effect.provideService(Registry.Registry, registry),
        Effect.provide(AppLogs.layer(parsed.logFormat)),
        Effect.provide(Logging.layer(parsed.logLevel, parsed.logFormat))
      )
    if (Option.isSome(parsed.configFile)) {
      const path = parsed.configFile.value
      const extra = [
        parsed.socket.length > 0 ? "-s" : undefined,
        parsed.listen.length > 0 ? "-l" : undefined,
        (appCommand ?? parsed.command).length > 0 ? "a command" : undefined
      ].filter((flag) => flag !== undefined)
      if (extra.length > 0) {
        return yield* Effect.fail(usage(`-c takes the services from the file: give no ${extra.join(" or ")} with it`))
      }
      // Loaded for config mode only: a run from flags never builds the file's schemas (effect/Schema).
      const [ConfigFile, ServicesModule] = yield* Effect.promise(() => Promise.all([import("../ConfigFile.js"), import("../Services.js")]))
      const file = yield* ConfigFile.load(path, Users.resolver)
      return yield* provide(Effect.scoped(
        Effect.gen(function*() {
          yield* forwardSignals(configSignals)
          // SIGHUP is caught before anything listens (its default action would end soad); a reload asked for
          // while the services start runs once they have.
          const started = yield* Deferred.make<Services.Services>()
          // systemd sees the reload from RELOADING=1 to READY=1, whether the new config applies or not. What it
          // did goes to `soad reload`.
          const reload = Effect.gen(function*() {
            const supervisor = yield* Deferred.await(started)
            yield* reloading
            yield* event("info", "reloading", `reloading ${path} (SIGHUP or soad reload)`)
            const next = yield* Effect.either(ConfigFile.load(path, Users.resolver))
            let outcome: ReloadOutcome
            if (Either.isRight(next)) {
              const applied = yield* supervisor.apply(next.right)
              yield* Effect.forkScoped(Effect.delay(settle(), "1 second"))
              outcome = { applied: applied.complete, summary: applied.summary, errors: [] }
            } else {
              const summary = "the reload failed: soad keeps running the config it had"
              for (const error of next.left.errors) yield* event("error", "config_error", error)
              yield* event("error", "reload_failed", summary)
              outcome = { applied: false, summary, errors: next.left.errors }
            }
            yield* notify("READY=1")
            return outcome
          })
          const reloader = yield* Reloads.make(reload)
          yield* onSignal("SIGHUP", reloader.unsafeRequest)
          yield* Deferred.succeed(started, yield* ServicesModule.start(file))
          yield* (yield* ProcessService).announce
          yield* observability(parsed, ControlPaths.instanceOf(path), reloader.request)
          yield* ready(afterStart, file.services.length)
          return yield* Effect.never
        })
      ))
    }
    const config = yield* toConfig(parsed, appCommand, Users.resolver)
    // One app: no budget to start it under (config mode's services have the file's, from Services).
    return yield* provide(Effect.provideService(Effect.scoped(
      Effect.gen(function*() {
        yield* forwardSignals(forwardedSignals)
        const listeners = yield* Activator.listen(config).pipe(Effect.annotateLogs("service", config.name))
        yield* (yield* ProcessService).announce
        const serving = yield* Effect.forkScoped(Activator.serve(config, listeners))
        yield* observability(parsed, singleInstance(config))
        yield* ready(afterStart, 1)
        return yield* Fiber.join(serving)
      })
    ), Budget.Budget, Budget.unlimited))
  })

/** Calls `handler` each time the signal comes, until the scope closes. */
const onSignal = (name: NodeJS.Signals, handler: () => void): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => process.on(name, handler)),
    () => Effect.sync(() => process.off(name, handler))
  )

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

/**
 * The OS services a run needs (main.ts builds them, with killOnSecondSignal); a run provides the rest itself: the
 * Registry the control socket reads, the AppLogs that capture the apps' output, one app's unlimited Budget.
 */
export type Requirements = SocketService | ProcessService | RelayService | AppNotify

/**
 * Says a failed run's error on stderr, one line each, in soad's words (the command tree says its own parse
 * errors, cli/command.ts).
 */
export const report = (error: { readonly _tag: string; readonly message: string; readonly errors?: ReadonlyArray<string> }): Effect.Effect<void> =>
  error._tag === "UsageError"
    ? Console.error(`soad: ${error.message} (see soad --help)`)
    : error._tag === "ConfigError" && error.errors !== undefined
    ? Effect.forEach(error.errors, (line) => Console.error(`soad: ${line}`), { discard: true })
    : Console.error(`soad: ${error.message}`)

/** The exit code for a run's failure: 2 for a usage error, else 1. */
export const exitCode = (error: unknown): number =>
  (error as { _tag?: string })._tag === "UsageError" || (error as { usage?: boolean }).usage === true ? 2 : 1
