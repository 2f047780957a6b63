/**
 * The control socket: `soad status`, `soad wake NAME` and `soad sleep NAME` talk to the running soad over a
 * UNIX socket that only soad's own user (and root) may use: created 0600 before it listens, and each peer's
 * credentials checked (SO_PEERCRED). One JSON request per connection, one JSON answer; `soad logs` gets its
 * answer and then one JSON line per line of the app's output (followed until the client closes, with `-f`).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as AppLogs from "./appLogs.js"
import { lineReader, parseRequest } from "./controlRequest.js"
import { native } from "../os/native.js"
import { shortHash } from "../core/lifecycle.js"
import * as Procfs from "../os/procfs.js"
import { printable } from "./terminal.js"
import { closer } from "../os/serverClose.js"
import { event } from "../Logging.js"
import { Registry, type Status } from "../Registry.js"

/** The control socket cannot be used; `message` says why. */
export class ControlError extends Data.TaggedError("ControlError")<{ readonly message: string }> {}

/**
 * Where the control socket is when `--control` does not say. A named instance (`--name NAME`, or the name
 * `instanceOf` derives from `-c FILE`) has its own: $XDG_RUNTIME_DIR/soad/NAME.sock, else /run/soad/NAME.sock, so
 * two soads never answer for each other. Without a name: $XDG_RUNTIME_DIR/soad.sock, else /run/soad/control.sock.
 */
export const defaultPath = (env: NodeJS.ProcessEnv = process.env, instance?: string): string => {
  const runtime = env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== "" ? env.XDG_RUNTIME_DIR : undefined
  if (instance !== undefined) return Path.join(runtime ?? "/run", "soad", `${instance}.sock`)
  return runtime !== undefined ? Path.join(runtime, "soad.sock") : "/run/soad/control.sock"
}

/** What `--name` takes: letters, digits, `_`, `.`, `@`, `-`, starting with a letter or digit, at most 64. */
export const instanceName = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/

/**
 * The instance name of a soad run with `-c FILE`: the file's name without its extension and a hash of its real
 * absolute path (`apps-1f0c9a2e` for /etc/soad/apps.toml), the same for `soad -c FILE` and `soad status -c FILE`
 * from any directory or through any symlink.
 */
export const instanceOf = (file: string): string => {
  let real = Path.resolve(file)
  try {
    real = Fs.realpathSync(real)
  } catch {
    // not there (yet): its absolute path
  }
  const stem = Path.basename(real, Path.extname(real)).replace(/[^A-Za-z0-9_.@-]/g, "_").replace(/^[^A-Za-z0-9]+/, "")
  return `${stem.slice(0, 40) || "soad"}-${shortHash(real)}`
}

/** A request. */
export type Request =
  | { readonly command: "status" }
  | { readonly command: "wake"; readonly service: string }
  | { readonly command: "sleep"; readonly service: string }

/**
 * `soad logs`: the latest `lines` lines of a service's output, then (with `follow`) each new one until the client
 * closes. The answer is a Response line, then one LogMessage per line.
 */
export interface LogsRequest {
  readonly command: "logs"
  readonly service: string
  readonly lines: number
  readonly follow: boolean
}

/** After a `logs` answer's first line: a line of the app's output, or how many lines a slow reader missed. */
export type LogMessage =
  | {
    readonly stream: AppLogs.Stream
    readonly pid: number
    readonly time: number
    readonly line: string
    /** The next message continues this line (it was cut at 16 KiB). */
    readonly continued?: true
  }
  | { readonly dropped: number }

/** The most a `soad logs -f` client may leave unread in soad before its lines are dropped (and counted to it). */
export const followLimitBytes = 256 * 1024

/** A service in a status answer. */
export interface ServiceReport {
  readonly name: string
  readonly state: string
  readonly pid: number | null
  readonly uptime_s: number | null
  readonly idle_s: number | null
  readonly memory_bytes: number | null
  readonly activations: number
  readonly idle_stops: number
  readonly crashes: number
  readonly failed_starts: number
  readonly listeners: ReadonlyArray<string>
  /** The app's peak resident memory while it ran (this run's, else the latest run's); null before any sample. */
  readonly peak_memory_bytes: number | null
  /** RAM-time saved while the app was stopped: peak memory × time stopped. */
  readonly saved_byte_seconds: number
  /** Why the app last failed (a failed start, a crash), and how long ago. */
  readonly last_error: string | null
  readonly last_error_age_s: number | null
  /** `--ready notify`: the app's latest STATUS= text in this run. */
  readonly app_status?: string
  /** `--accept`: the instances running now, one per connection (`activations`: connections served). */
  readonly instances?: number
  readonly open_connections?: number
  readonly relayed_bytes?: { readonly in: number; readonly out: number }
  /** Proxy mode with --waiting-page: waiting pages served. */
  readonly waiting_pages?: number
}

/** An answer. */
export type Response =
  | { readonly ok: true; readonly services?: ReadonlyArray<ServiceReport>; readonly message?: string }
  | { readonly ok: false; readonly error: string }

const report = (status: Status, now: number): ServiceReport => {
  const running = status.pid !== undefined && status.startedAt !== undefined
  return {
    name: status.name,
    state: status.state,
    pid: status.pid ?? null,
    uptime_s: running ? (now - status.startedAt!) / 1000 : null,
    idle_s: running && status.lastActivity !== undefined ? Math.max(0, now - status.lastActivity) / 1000 : null,
    memory_bytes: running ? Procfs.groupResidentBytes(status.pid!) : null,
    activations: status.activations,
    idle_stops: status.idleStops,
    crashes: status.crashes,
    failed_starts: status.failedStarts,
    listeners: status.listeners.map((listener) => listener.description),
    peak_memory_bytes: status.peakMemory ?? null,
    saved_byte_seconds: status.savedByteSeconds ?? 0,
    last_error: status.lastError?.message ?? null,
    last_error_age_s: status.lastError === undefined ? null : Math.max(0, now - status.lastError.at) / 1000,
    ...(status.appStatus !== undefined ? { app_status: status.appStatus } : {}),
    ...(status.instances !== undefined ? { instances: status.instances } : {}),
    ...(status.openConnections !== undefined ? { open_connections: status.openConnections } : {}),
    ...(status.relayedBytes !== undefined ? { relayed_bytes: status.relayedBytes } : {}),
    ...(status.waitingPages !== undefined ? { waiting_pages: status.waitingPages } : {})
  }
}

/** Carries out one request against the registry. */
export const handle = (request: Request): Effect.Effect<Response, never, Registry> =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const services = yield* registry.services
    if (request.command === "status") {
      const now = yield* Clock.currentTimeMillis
      const reports: Array<ServiceReport> = []
      for (const service of services) reports.push(report(yield* service.status, now))
      return { ok: true, services: reports }
    }
    const service = services.find((candidate) => candidate.name === request.service)
    if (service === undefined) {
      return {
        ok: false,
        error: `no service '${request.service}'; the services are ${services.map((s) => s.name).join(", ") || "none"}`
      }
    }
    const outcome = yield* (request.command === "wake" ? service.wake : service.sleep)
    yield* event("info", request.command, `${request.command} ${service.name}: ${outcome}`, { target: service.name })
    return { ok: true, message: `${service.name}: ${outcome}` }
  })

const logMessage = (line: AppLogs.LogLine): string =>
  JSON.stringify({
    stream: line.stream,
    pid: line.pid,
    time: line.time,
    line: line.line,
    ...(line.continued ? { continued: true } : {})
  } satisfies LogMessage) + "\n"

/**
 * Answers a `logs` request on `socket`: the latest lines, then, when following, each new line until the client
 * closes; a client that reads too slowly misses lines (told as `{"dropped":N}`), soad never queues more for it
 * than `followLimitBytes`.
 */
const serveLogs = (socket: Net.Socket, request: LogsRequest): Effect.Effect<void, never, Registry> =>
  Effect.gen(function*() {
    const services = yield* (yield* Registry).services
    const logs = yield* Effect.serviceOption(AppLogs.AppLogs)
    const refuse = (error: string) => Effect.sync(() => socket.end(JSON.stringify({ ok: false, error } satisfies Response) + "\n"))
    if (!services.some((service) => service.name === request.service)) {
      return yield* refuse(
        `no service '${request.service}'; the services are ${services.map((s) => s.name).join(", ") || "none"}`
      )
    }
    if (Option.isNone(logs)) return yield* refuse("this soad does not capture its apps' output")
    yield* Effect.sync(() => {
      socket.write(JSON.stringify({ ok: true } satisfies Response) + "\n")
      for (const line of logs.value.tail(request.service, Math.min(request.lines, AppLogs.ringLines))) {
        socket.write(logMessage(line))
      }
      if (!request.follow) return socket.end()
      let dropped = 0
      const unfollow = logs.value.follow(request.service, (line) => {
        if (socket.writableLength > followLimitBytes) return void dropped++
        if (dropped > 0) socket.write(JSON.stringify({ dropped } satisfies LogMessage) + "\n")
        dropped = 0
        socket.write(logMessage(line))
      })
      socket.once("close", unfollow)
    })
  })

const fdOf = (socket: Net.Socket): number | undefined =>
  (socket as unknown as { readonly _handle?: { readonly fd?: number } })._handle?.fd

/** Who is at the other end of a control connection (SO_PEERCRED). */
export interface PeerCredentials {
  readonly pid: number
  readonly uid: number
  readonly gid: number
}

/** Reads a control connection's peer; undefined when it cannot be read. */
export type PeerReader = (socket: Net.Socket) => PeerCredentials | undefined

/** The peer as the kernel says (SO_PEERCRED on the accepted socket); undefined when that cannot be read. */
const livePeer: PeerReader = (socket) => {
  const fd = fdOf(socket)
  if (fd === undefined) return undefined
  try {
    return native().peerCredentials(fd)
  } catch {
    return undefined
  }
}

/** May this peer use the control socket? Only soad's own user or root; never a peer that cannot be verified. */
export const peerAllowed = (credentials: PeerCredentials | undefined, soadUid: number): boolean =>
  credentials !== undefined && (credentials.uid === soadUid || credentials.uid === 0)

/** Why a peer is refused, as the client prints it. */
const refusal = (credentials: PeerCredentials | undefined): string =>
  credentials === undefined ? "permission denied: cannot verify the peer" : "permission denied: not soad's user"

/**
 * Serves the control socket at `path` until the scope closes. If another soad owns the path, fails when the
 * path was asked for (`explicit`), else logs it and serves nothing. `peer` reads each client's credentials
 * (tests pass one that cannot).
 */
export const serve = (
  path: string,
  explicit: boolean,
  peer: PeerReader = livePeer
): Effect.Effect<void, ControlError, Registry | Scope.Scope> =>
  Effect.gen(function*() {
    const n = native()
    const fail = (message: string) =>
      explicit
        ? Effect.fail(new ControlError({ message: `--control ${path}: ${message}` }))
        : event("warn", "control_unavailable", `no control socket: ${path}: ${message} (choose one with --control PATH)`)
    const dir = Path.dirname(path)
    try {
      if (!Fs.existsSync(dir)) Fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch (error) {
      return yield* fail(`cannot create ${dir}: ${(error as Error).message}`)
    }
    let existing: Fs.Stats | undefined
    try {
      existing = Fs.lstatSync(path)
    } catch {
      existing = undefined
    }
    if (existing !== undefined) {
      if (!existing.isSocket()) return yield* fail("it exists and is not a socket")
      let live = false
      try {
        live = n.probeUnix(path, false)
      } catch {
        live = false
      }
      if (live) return yield* fail("another soad is using it")
      Fs.rmSync(path, { force: true })
    }
    let created: { readonly fd: number; readonly dev: number; readonly ino: number }
    try {
      created = n.listenUnix(path, false, 16, 0o600, null, null) // mode 0 until it is 0600: nobody else can connect
    } catch (error) {
      return yield* fail((error as Error).message)
    }
    const fd = created.fd
    const runtime = yield* Effect.runtime<Registry>()
    const myUid = process.getuid?.() ?? 0
    const server = Net.createServer((socket) => {
      socket.on("error", () => {})
      const credentials = peer(socket)
      if (!peerAllowed(credentials, myUid)) {
        // Read and drop what it sends, so its close is seen: an unread socket stays open and holds server.close.
        socket.resume()
        socket.end(JSON.stringify({ ok: false, error: refusal(credentials) }) + "\n")
        return
      }
      const read = lineReader()
      const onData = (chunk: Buffer) => {
        const got = read(chunk)
        if (got._tag === "More") return
        // One request per connection: what the peer sends after it (or past the limit) is read and dropped,
        // never kept or parsed again.
        socket.off("data", onData)
        if (got._tag === "TooLong") {
          socket.end(JSON.stringify({ ok: false, error: "request too long" }) + "\n")
          return
        }
        const request = parseRequest(got.line)
        if (request === undefined) {
          socket.end(JSON.stringify({ ok: false, error: "bad request" }) + "\n")
          return
        }
        if (request.command === "logs") {
          Runtime.runCallback(runtime)(serveLogs(socket, request))
          return
        }
        Runtime.runCallback(runtime)(handle(request), {
          onExit: (exit) =>
            socket.end(
              JSON.stringify(Exit.isSuccess(exit) ? exit.value : { ok: false, error: "internal error" }) + "\n"
            )
        })
      }
      socket.on("data", onData)
    })
    // An idle client must not hold shutdown: the release ends every open connection (see serverClose.ts).
    const close = closer(server)
    yield* Effect.acquireRelease(
      Effect.async<void, ControlError>((resume) => {
        server.once("error", (error) => resume(Effect.fail(new ControlError({ message: `${path}: ${error.message}` }))))
        server.listen({ fd }, () => resume(Effect.void))
      }),
      () =>
        Effect.zipRight(
          Effect.sync(() => {
            try {
              const now = Fs.lstatSync(path)
              if (now.ino === created.ino && now.dev === created.dev) Fs.unlinkSync(path)
            } catch {
              // gone already
            }
          }),
          close
        )
    )
    yield* event("debug", "control", `control socket: ${path}`, { path })
  })

/** Why a control connection failed, in the words the client prints. */
const connectionError = (path: string, error: NodeJS.ErrnoException): ControlError =>
  new ControlError({
    message: error.code === "ENOENT" || error.code === "ECONNREFUSED"
      ? `no soad is running with control socket ${path} (give its --control PATH)`
      : error.code === "EACCES"
      ? `${path}: permission denied: only soad's user may control it`
      : `${path}: ${error.message}`
  })

/** Where `soad logs` writes: the lines on `out`, what the client says about them (lines missed) on `err`. */
export interface LogsOutput {
  readonly out: NodeJS.WritableStream
  readonly err: NodeJS.WritableStream
}

/**
 * Sends a `logs` request and writes what comes back to `output` until soad ends it (at once without `follow`),
 * reading no faster than `output.out` takes it. A piece of a cut line is written without its newline, so the
 * pieces join into the line; control characters other than TAB are U+FFFD (the app chose them, the terminal is the
 * operator's). Fails with the refusal (an unknown service) or the connection's error.
 */
export const logs = (path: string, body: LogsRequest, output: LogsOutput): Effect.Effect<void, ControlError> =>
  Effect.async<void, ControlError>((resume) => {
    const socket = Net.connect(path)
    let buffer = ""
    let answered = false
    let finished = false
    const finish = (result: Effect.Effect<void, ControlError>) => {
      if (finished) return
      finished = true
      socket.destroy()
      resume(result)
    }
    const onLine = (text: string) => {
      if (!answered) {
        answered = true
        const response = JSON.parse(text) as Response
        if (!response.ok) finish(Effect.fail(new ControlError({ message: response.error })))
        return
      }
      const message = JSON.parse(text) as LogMessage
      if ("dropped" in message) {
        output.err.write(`soad: ${message.dropped} line${message.dropped === 1 ? "" : "s"} missed: this reader was too slow\n`)
      } else if (!output.out.write(printable(message.line) + (message.continued === true ? "" : "\n"))) {
        socket.pause()
        output.out.once("drain", () => socket.resume())
      }
    }
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(JSON.stringify(body) + "\n"))
    socket.on("data", (chunk: string) => {
      buffer += chunk
      try {
        for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          onLine(line)
        }
      } catch {
        finish(Effect.fail(new ControlError({ message: `${path}: soad's answer cannot be read` })))
      }
    })
    socket.on("end", () =>
      finish(answered ? Effect.void : Effect.fail(new ControlError({ message: `${path}: no answer from soad` }))))
    socket.on("error", (error: NodeJS.ErrnoException) => finish(Effect.fail(connectionError(path, error))))
    // The reader went away (`soad logs -f | head`): that ends the command, quietly.
    output.out.once("error", () => finish(Effect.void))
    return Effect.sync(() => socket.destroy())
  })

/** Sends one request to the soad whose control socket is at `path`. */
export const request = (path: string, body: Request): Effect.Effect<Response, ControlError> =>
  Effect.async<Response, ControlError>((resume) => {
    const socket = Net.connect(path)
    let answer = ""
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(JSON.stringify(body) + "\n"))
    socket.on("data", (chunk: string) => (answer += chunk))
    socket.on("end", () => {
      try {
        resume(Effect.succeed(JSON.parse(answer) as Response))
      } catch {
        resume(Effect.fail(new ControlError({ message: `${path}: no answer from soad` })))
      }
    })
    socket.on("error", (error: NodeJS.ErrnoException) => {
      const why = error.code === "ENOENT" || error.code === "ECONNREFUSED"
        ? `no soad is running with control socket ${path} (give its --control PATH, --name NAME or -c FILE)`
        : error.code === "EACCES"
        ? `${path}: permission denied: only soad's user may control it`
        : `${path}: ${error.message}`
      resume(Effect.fail(new ControlError({ message: why })))
    })
    return Effect.sync(() => socket.destroy())
  })

/** A duration in seconds as the status table shows it: "42s", "4m10s", "3h05m"; "-" for none. */
export const seconds = (value: number | null): string => {
  if (value === null) return "-"
  if (value < 60) return `${Math.round(value)}s`
  if (value < 3600) return `${Math.floor(value / 60)}m${String(Math.round(value % 60)).padStart(2, "0")}s`
  return `${Math.floor(value / 3600)}h${String(Math.floor((value % 3600) / 60)).padStart(2, "0")}m`
}

/** Memory as the status table shows it: "46M", "1.2G"; "-" for none. */
export const bytes = (value: number | null): string =>
  value === null ? "-" : value >= 1e9 ? `${(value / 1e9).toFixed(1)}G` : `${Math.round(value / 1e6)}M`

/** RAM-time in MB·h (GB·h from 1,000 MB·h). */
export const ramTime = (byteSeconds: number): string => {
  const mbHours = byteSeconds / 1e6 / 3600
  if (mbHours >= 1000) return `${(mbHours / 1000).toFixed(1)} GB·h`
  const shown = mbHours >= 10 ? String(Math.round(mbHours)) : mbHours >= 1 ? mbHours.toFixed(1) : String(Number(mbHours.toPrecision(2)))
  return `${shown} MB·h`
}

/** The longest app STATUS= text the table shows; the rest is cut to "…" (`--json` has it whole). */
const appStatusWidth = 40

/**
 * An app's STATUS= text as the table shows it: the app chose it, so control characters (a terminal escape, a
 * carriage return) become U+FFFD before it reaches the operator's terminal (TAB too: it would break the columns),
 * and a long text is cut.
 */
export const shownAppStatus = (text: string): string => {
  const safe = printable(text).replaceAll("\t", "\ufffd")
  const chars = [...safe]
  return chars.length > appStatusWidth ? `${chars.slice(0, appStatusWidth - 1).join("")}…` : safe
}

/**
 * The status table `soad status` prints: one row per service, PEAK (the app's peak memory while it ran) and SAVED
 * (that peak × the time it was stopped), the last error, and a total row. An accept-mode service shows its
 * instances after its state; APP STATUS (the STATUS= of `--ready notify` apps) is there only when an app sent one.
 */
export const table = (services: ReadonlyArray<ServiceReport>): string => {
  const sum = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0)
  const withAppStatus = services.some((s) => s.app_status !== undefined)
  /** The APP STATUS cell, or none when no app sent a STATUS=. */
  const appStatus = (cell: string): ReadonlyArray<string> => withAppStatus ? [cell] : []
  const rows = [
    ["SERVICE", "STATE", ...appStatus("APP STATUS"), "PID", "UPTIME", "IDLE", "MEMORY", "PEAK", "SAVED", "STARTS", "LISTEN", "LAST ERROR"],
    ...services.map((s) => [
      s.name,
      s.instances === undefined ? s.state : `${s.state} (${s.instances} instance${s.instances === 1 ? "" : "s"})`,
      ...appStatus(s.app_status === undefined ? "-" : shownAppStatus(s.app_status)),
      s.pid === null ? "-" : String(s.pid),
      seconds(s.uptime_s),
      seconds(s.idle_s),
      bytes(s.memory_bytes),
      bytes(s.peak_memory_bytes),
      ramTime(s.saved_byte_seconds),
      String(s.activations),
      s.listeners.join(","),
      s.last_error === null ? "-" : `${seconds(s.last_error_age_s)} ago: ${s.last_error}`
    ]),
    [
      "total",
      `${services.filter((s) => s.pid !== null || (s.instances ?? 0) > 0).length} running`,
      ...appStatus(""),
      "",
      "",
      "",
      bytes(sum(services.map((s) => s.memory_bytes ?? 0))),
      "",
      ramTime(sum(services.map((s) => s.saved_byte_seconds))),
      String(sum(services.map((s) => s.activations))),
      "",
      ""
    ]
  ]
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) => row.map((cell, column) => column === row.length - 1 ? cell : cell.padEnd(widths[column]!)).join("  ").trimEnd())
    .join("\n")
}
