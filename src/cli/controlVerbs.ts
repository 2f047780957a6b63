/**
 * The control commands, run: find the soad to ask (`--control`, `--name`, `-c FILE`, else every control socket in
 * the directories soads make theirs in), ask, print the answer, and give the exit code. Plain Node, no Effect: the
 * light path runs these in about the time Node takes to start (measured with `BENCH_ONLY=control npm run bench`),
 * and the full command tree calls the same functions for the lines only it parses.
 *
 * @internal
 */
import { setMaxListeners } from "node:events"
import * as Path from "node:path"
import type { ControlCommand, Which } from "./controlArgs.js"
import { asAppHint, looksLikeArgument } from "./controlArgs.js"
import * as Client from "../observe/controlClient.js"
import * as Paths from "../observe/controlPaths.js"
import type { Request, Response, ServiceReport } from "../observe/controlProtocol.js"
import * as StatusTable from "../observe/statusTable.js"
import { stringify } from "../observe/terminal.js"
import { net } from "../os/lazyNet.js"

/** Where a control command writes, and the environment it finds soads by. */
export interface Io {
  readonly out: NodeJS.WritableStream
  readonly err: NodeJS.WritableStream
  readonly env: NodeJS.ProcessEnv
  /** Aborted when the user interrupts (`soad logs -f` ends quietly). */
  readonly signal?: AbortSignal
}

/** A control command that failed: `message` is printed as `soad: message`; exit `code`. */
class Failed extends Error {
  constructor(message: string, readonly code: number = 1, readonly details: ReadonlyArray<string> = []) {
    super(message)
  }
}

/** A soad to ask: its instance name and control socket. */
type Target = Paths.Found

/** The soad `which` names, if it names one. */
const named = (which: Which, env: NodeJS.ProcessEnv): Target | undefined => {
  if (which.control !== undefined) {
    const path = Path.resolve(which.control)
    return { instance: Path.basename(path, ".sock"), path }
  }
  const instance = which.name ?? (which.config === undefined ? undefined : Paths.instanceOf(which.config))
  return instance === undefined ? undefined : { instance, path: Paths.named(instance, env) }
}

/** Says that no soad answers in the directories, and how a soad elsewhere is reached. */
const noneRunning = (env: NodeJS.ProcessEnv): string =>
  `no soad is running: no control socket answers in ${Paths.directories(env).join(" or ")} ` +
  "(a soad started with --control PATH is asked with the same --control PATH)"

/** A socket no soad answers on: removed if it is ours and old (Paths.removeStale), so the next look is shorter. */
const forget = (path: string): void => void Paths.removeStale(path, process.getuid?.())

/**
 * Whether a soad answers on `path`: it accepts a connection (closed at once, unused), or nobody listens (the socket
 * of a killed soad: forgotten), or it is not ours to use.
 */
const probe = (path: string): Promise<"live" | "none" | "denied" | "other"> =>
  new Promise((resolve) => {
    const socket = net().connect(path)
    socket.on("connect", () => {
      socket.destroy()
      resolve("live")
    })
    socket.on("error", (error: NodeJS.ErrnoException) => {
      const reason = Client.connectionFailure(path, error).reason
      if (reason === "none") forget(path)
      resolve(reason)
    })
  })

/**
 * The one soad a verb talks to: the one `which` names, else the only one running. Several running: refused with
 * their names and how to pick one (exit 2).
 */
const one = async (which: Which, env: NodeJS.ProcessEnv, example: string): Promise<Target> => {
  const target = named(which, env)
  if (target !== undefined) return target
  const candidates = Paths.found(env)
  const states = await Promise.all(candidates.map((candidate) => probe(candidate.path)))
  // Another fault (a full backlog: EAGAIN) may be a soad that is there: asking it says what is wrong.
  const live = candidates.filter((_, i) => states[i] === "live" || states[i] === "other")
  if (live.length === 1) return live[0]!
  if (live.length > 1) {
    throw new Failed(
      `${live.length} soads are running (${live.map((t) => t.instance).join(", ")}): say which with --name, ` +
        `e.g. soad ${example} --name ${live[0]!.instance}`,
      2
    )
  }
  const denied = candidates.filter((_, i) => states[i] === "denied")
  if (denied.length > 0) {
    throw new Failed(
      `permission denied: the soads running (${denied.map((t) => t.instance).join(", ")}) are another user's: ` +
        "only their user or root may control them"
    )
  }
  throw new Failed(noneRunning(env))
}

/** Asks `target`; a refusal (`ok: false`) is a Failed with the answer's details. */
const ask = async (target: Target, body: Request, signal: AbortSignal | undefined) => {
  const response = await Client.request(target.path, body, signal)
  if (!response.ok) throw new Failed(response.error, 1, response.details ?? [])
  return response
}

/** Whether `pattern` names services by a wildcard rather than one by its name. */
const isGlob = (pattern: string): boolean => pattern.includes("*") || pattern.includes("?")

/** Says which of `patterns` no service matches, or nothing if each matches one. */
const unmatched = (patterns: ReadonlyArray<string>, names: ReadonlyArray<string>): string | undefined => {
  const missing = patterns.filter((pattern) => !names.some((name) => StatusTable.matches(pattern, name)))
  if (missing.length === 0) return undefined
  const listed = names.length <= 10 ? names.join(", ") : `${names.slice(0, 10).join(", ")} and ${names.length - 10} more`
  const what = missing.map((pattern) => `'${pattern}'`).join(", ")
  return `${missing.length === 1 && !isGlob(missing[0]!) ? `no service ${what}` : `no service matches ${what}`}; the services are ${listed || "none"}`
}

/** `soad status`: every soad found (or the one named), each's services under its name when there are several. */
const status = async (command: Extract<ControlCommand, { verb: "status" }>, io: Io): Promise<number> => {
  const target = named(command.which, io.env)
  const targets = target !== undefined ? [target] : Paths.found(io.env)
  const answers = await Promise.all(targets.map((t) =>
    ask(t, { command: "status" }, io.signal).then(
      (response): { readonly services: ReadonlyArray<ServiceReport> } => ({ services: response.services ?? [] }),
      (error: unknown) => ({ error })
    )
  ))
  const first = answers[0]
  if (target !== undefined && first !== undefined && "error" in first) throw first.error
  const answered: Array<{ readonly instance: string; readonly services: ReadonlyArray<ServiceReport> }> = []
  const denied: Array<string> = []
  let faults = 0
  answers.forEach((answer, i) => {
    const instance = targets[i]!.instance
    if ("services" in answer) return void answered.push({ instance, services: answer.services })
    const error = answer.error
    if (error instanceof Client.ControlFailure && error.reason === "none") return forget(targets[i]!.path) // a killed soad's
    if (error instanceof Client.ControlFailure && error.reason === "denied") return void denied.push(instance)
    faults++
    io.err.write(`soad: ${instance}: ${error instanceof Error ? error.message : String(error)}\n`)
  })
  if (denied.length > 0) {
    io.err.write(`soad: not shown, another user's: ${denied.join(", ")} (only their user or root may control them)\n`)
  }
  if (answered.length === 0) {
    if (faults > 0) return 1
    throw new Failed(denied.length > 0 ? "no soad of this user is running" : noneRunning(io.env))
  }
  const missing = unmatched(command.patterns, answered.flatMap((a) => a.services.map((s) => s.name)))
  if (missing !== undefined) throw new Failed(missing)
  const options = { all: command.all, patterns: command.patterns }
  if (command.json) {
    const services = answered.flatMap((a) =>
      StatusTable.shown(a.services, { ...options, all: true }).rows.map((s) => ({ instance: a.instance, ...s }))
    )
    io.out.write(stringify(services, 2) + "\n")
  } else {
    const views = answered
      .filter((a) => command.patterns.length === 0 || StatusTable.shown(a.services, options).rows.length > 0)
      .map((a) => StatusTable.view(a.services, options, answered.length > 1 ? a.instance : undefined))
    io.out.write(views.join("\n\n") + "\n")
  }
  return faults > 0 ? 1 : 0
}

/** `soad wake|start|sleep|stop|restart NAME`: one request, its answer printed. */
const order = async (command: Extract<ControlCommand, { verb: "wake" | "sleep" | "restart" }>, io: Io): Promise<number> => {
  const hint = looksLikeArgument(command.service) ? `; ${asAppHint([command.typed, command.service])}` : ""
  try {
    const target = await one(command.which, io.env, `${command.typed} ${command.service}`)
    const response = await ask(target, { command: command.verb, service: command.service }, io.signal)
    io.out.write(`${response.message ?? "done"}\n`)
    return 0
  } catch (error) {
    // `soad sleep 30` with no service 30 (or no soad, or several to choose from): most likely an app's command
    // that was meant to follow `--`.
    if (hint !== "" && error instanceof Error && /^no (service|soad is running)|soads are running/.test(error.message)) {
      throw new Failed(error.message + hint, error instanceof Failed ? error.code : 1)
    }
    throw error
  }
}

/** `soad reload`: the reload's summary; exit 1 if the file was refused (its errors first) or not all applied. */
const reload = async (command: Extract<ControlCommand, { verb: "reload" }>, io: Io): Promise<number> => {
  const target = await one(command.which, io.env, "reload")
  const response: Response = await ask(target, { command: "reload" }, io.signal)
  if (!response.ok) return 1 // (ask throws on refusals)
  io.out.write(`${response.message ?? "reloaded"}\n`)
  if (response.incomplete === true) {
    io.err.write("soad: the reload did not apply to every service (see above)\n")
    return 1
  }
  return 0
}

/** `soad logs [NAME]`: the latest lines, of one service or of every one (prefixed), followed with -f. */
const logs = async (command: Extract<ControlCommand, { verb: "logs" }>, io: Io): Promise<number> => {
  const target = await one(command.which, io.env, `logs${command.service === undefined ? "" : ` ${command.service}`}`)
  await Client.logs(
    target.path,
    { command: "logs", ...(command.service === undefined ? {} : { service: command.service }), lines: command.lines, follow: command.follow },
    { out: io.out, err: io.err },
    io.signal
  )
  return 0
}

/**
 * Runs a control command: prints its answer on `io.out`, a failure as `soad: …` lines on `io.err`; the exit code
 * (0; 1 when soad refused or cannot be reached; 2 when the line must say which soad).
 */
export const run = async (command: ControlCommand, io: Io): Promise<number> => {
  if (io.signal !== undefined) setMaxListeners(Infinity, io.signal) // a listener per soad asked at once: no leak
  try {
    switch (command.verb) {
      case "status":
        return await status(command, io)
      case "reload":
        return await reload(command, io)
      case "logs":
        return await logs(command, io)
      default:
        return await order(command, io)
    }
  } catch (error) {
    // Interrupted (Ctrl-C): nothing to say; 130, as a shell says of SIGINT (`soad logs -f` ends with 0 instead).
    if (io.signal?.aborted === true) return 130
    const failed = error instanceof Failed ? error : undefined
    for (const detail of failed?.details ?? []) io.err.write(`soad: ${detail}\n`)
    io.err.write(`soad: ${error instanceof Error ? error.message : String(error)}${failed?.code === 2 ? " (see soad --help)" : ""}\n`)
    return failed?.code ?? 1
  }
}
