/**
 * The control socket: `soad status`, `wake`, `sleep`, `restart`, `reload` and `logs` talk to the running soad over
 * a UNIX socket that only soad's own user (and root) may use: created 0600 before it listens, and each peer's
 * credentials checked (SO_PEERCRED). One JSON request per connection, one JSON answer (controlProtocol.ts);
 * `soad logs` gets its answer and then one JSON line per line of the apps' output (followed until the client
 * closes, with `-f`). The client is controlClient.ts (plain Node, for the light path); `request` and `logs` here
 * are it for Effect callers.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as Path from "node:path"
import * as Monotonic from "../core/monotonic.js"
import * as AppLogs from "./appLogs.js"
import * as Client from "./controlClient.js"
import type { LogMessage, LogsRequest, ReloadOutcome, Request, Response, ServiceReport } from "./controlProtocol.js"
import { lineReader, parseRequest } from "./controlRequest.js"
import { idNames, type IdNames, socketFiles, socketPaths } from "./socketFiles.js"
import * as Listeners from "../os/listeners.js"
import * as PathStats from "../os/pathStats.js"
import * as Peer from "../os/peer.js"
import * as Procfs from "../os/procfs.js"
import * as UnixServer from "../os/unixServer.js"
import { event } from "../Logging.js"
import { type Handle, Registry, type Status, statusesOf } from "../Registry.js"

/** The control socket cannot be used; `message` says why. */
export class ControlError extends Data.TaggedError("ControlError")<{ readonly message: string }> {}

export type { LogMessage, LogsRequest, ReloadOutcome, Request, Response, ServiceReport, SocketFileReport } from "./controlProtocol.js"
export { instanceName, instanceOf } from "./controlPaths.js"
export { bytes, ramTime, seconds, shownAppStatus, table } from "./statusTable.js"

/** The most a `soad logs -f` client may leave unread in soad before its lines are dropped (and counted to it). */
export const followLimitBytes = 256 * 1024

const report = (status: Status, now: number, names: IdNames, stats: ReadonlyMap<string, PathStats.PathStat | undefined>): ServiceReport => {
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
    sockets: socketFiles(status.listeners, names, stats),
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

/** The refusal of a request for a service soad does not have: the services it has (the first ten, and a count). */
const noService = (name: string, services: ReadonlyArray<Handle>): Response => {
  const names = services.map((s) => s.name)
  const listed = names.length <= 10
    ? names.join(", ") || "none"
    : `${names.slice(0, 10).join(", ")} and ${names.length - 10} more (soad status lists them)`
  return { ok: false, error: `no service '${name}'; the services are ${listed}` }
}

/** A reload's outcome as `soad reload` gets it: the summary, or the refusal with the file's errors. */
const reloaded = (outcome: ReloadOutcome): Response =>
  outcome.errors.length > 0
    ? { ok: false, error: outcome.summary, details: outcome.errors }
    : { ok: true, message: outcome.summary, ...(outcome.applied ? {} : { incomplete: true as const }) }

/**
 * Carries out one request against the registry. `reload` (config mode) reloads the file and waits for the reload
 * that covers this request; without it, a reload is refused: a single app's soad has no file to read again.
 */
export const handle = (request: Request, reload?: Effect.Effect<ReloadOutcome>): Effect.Effect<Response, never, Registry> =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const services = yield* registry.services
    if (request.command === "status") {
      const now = yield* Monotonic.now
      const names = idNames()
      const statuses = yield* statusesOf(services)
      const paths = statuses.flatMap((status) => socketPaths(status.listeners))
      const found = PathStats.lstatAll(paths)
      const stats = new Map(paths.map((path, i) => [path, found[i]]))
      return { ok: true, services: statuses.map((status) => report(status, now, names, stats)) }
    }
    if (request.command === "reload") {
      if (reload === undefined) {
        return { ok: false, error: "this soad runs one app from its flags, not a config file (-c FILE): there is nothing to reload" }
      }
      return reloaded(yield* reload)
    }
    const service = services.find((candidate) => candidate.name === request.service)
    if (service === undefined) return noService(request.service, services)
    if (request.command === "restart") {
      const stopped = yield* service.sleep
      const started = yield* service.wake
      yield* event("info", "restart", `restart ${service.name}: ${stopped}, then ${started}`, { target: service.name })
      return { ok: true, message: `${service.name}: ${stopped}, then ${started}` }
    }
    const outcome = yield* (request.command === "wake" ? service.wake : service.sleep)
    yield* event("info", request.command, `${request.command} ${service.name}: ${outcome}`, { target: service.name })
    return { ok: true, message: `${service.name}: ${outcome}` }
  })

const logMessage = (line: AppLogs.LogLine, service?: string): string =>
  JSON.stringify({
    stream: line.stream,
    pid: line.pid,
    time: line.time,
    line: line.line,
    ...(line.continued ? { continued: true } : {}),
    ...(service === undefined ? {} : { service })
  } satisfies LogMessage) + "\n"

/**
 * The latest `n` of several services' lines, oldest first: each tail is in time order, so the newest line is at
 * one of their ends; `n` picks among k ends cost O(n·k) (1,000 services × 1,000 lines: 1M comparisons, a few ms),
 * where sorting every tail would cost O(n·k·log) and hold them all at once. Each line with its tail's index.
 */
export const latest = <T extends { readonly time: number }>(
  tails: ReadonlyArray<ReadonlyArray<T>>,
  n: number
): ReadonlyArray<readonly [number, T]> => {
  const ends = tails.map((tail) => tail.length)
  const picked: Array<readonly [number, T]> = []
  while (picked.length < n) {
    let best = -1
    for (let i = 0; i < tails.length; i++) {
      if (ends[i]! > 0 && (best < 0 || tails[i]![ends[i]! - 1]!.time > tails[best]![ends[best]! - 1]!.time)) best = i
    }
    if (best < 0) break
    ends[best]!--
    picked.push([best, tails[best]![ends[best]!]!])
  }
  return picked.reverse()
}

/**
 * Answers a `logs` request on `socket`: the latest lines (of every service, each line with its service's name, when
 * the request names none), then, when following, each new line until the client closes; a client that reads too
 * slowly misses lines (told as `{"dropped":N}`), soad never queues more for it than `followLimitBytes`.
 */
const serveLogs = (socket: Net.Socket, request: LogsRequest): Effect.Effect<void, never, Registry | AppLogs.AppLogs> =>
  Effect.gen(function*() {
    const services = yield* (yield* Registry).services
    const logs = yield* AppLogs.AppLogs
    const refuse = (response: Response) => Effect.sync(() => socket.end(JSON.stringify(response) + "\n"))
    const one = request.service
    if (one !== undefined && !services.some((service) => service.name === one)) return yield* refuse(noService(one, services))
    if (!logs.captures) return yield* refuse({ ok: false, error: "this soad does not capture its apps' output" })
    const names = one === undefined ? services.map((service) => service.name) : [one]
    const prefixed = one === undefined
    const n = Math.min(request.lines, AppLogs.ringLines)
    yield* Effect.sync(() => {
      socket.write(JSON.stringify({ ok: true } satisfies Response) + "\n")
      for (const [i, line] of latest(names.map((name) => logs.tail(name, n)), n)) {
        socket.write(logMessage(line, prefixed ? names[i] : undefined))
      }
      if (!request.follow) return socket.end()
      let dropped = 0
      const unfollow = names.map((name) =>
        logs.follow(name, (line) => {
          if (socket.writableLength > followLimitBytes) return void dropped++
          if (dropped > 0) socket.write(JSON.stringify({ dropped } satisfies LogMessage) + "\n")
          dropped = 0
          socket.write(logMessage(line, prefixed ? name : undefined))
        })
      )
      socket.once("close", () => unfollow.forEach((stop) => stop()))
    })
  })

/** Who is at the other end of a control connection (SO_PEERCRED). */
export type { PeerCredentials } from "../os/peer.js"

/** Reads a control connection's peer; undefined when it cannot be read. */
export type PeerReader = (socket: Net.Socket) => Peer.PeerCredentials | undefined

/** The peer as the kernel says (SO_PEERCRED on the accepted socket); undefined when that cannot be read. */
const livePeer: PeerReader = Peer.credentials

/** May this peer use the control socket? Only soad's own user or root; never a peer that cannot be verified. */
export const peerAllowed = (credentials: Peer.PeerCredentials | undefined, soadUid: number): boolean =>
  credentials !== undefined && (credentials.uid === soadUid || credentials.uid === 0)

/** Why a peer is refused, as the client prints it. */
const refusal = (credentials: Peer.PeerCredentials | undefined): string =>
  credentials === undefined ? "permission denied: cannot verify the peer" : "permission denied: not soad's user"

/**
 * Serves the control socket at `path` until the scope closes. If another soad owns the path, fails when the
 * path was asked for (`explicit`), else logs it and serves nothing. `peer` reads each client's credentials
 * (tests pass one that cannot). `reload` answers `soad reload` (config mode; without it, the request is refused).
 */
export const serve = (
  path: string,
  explicit: boolean,
  peer: PeerReader = livePeer,
  reload?: Effect.Effect<ReloadOutcome>
): Effect.Effect<void, ControlError, Registry | AppLogs.AppLogs | Scope.Scope> =>
  Effect.gen(function*() {
    const fail = (message: string) =>
      explicit
        ? Effect.fail(new ControlError({ message: `--control ${path}: ${message}` }))
        : event(
          "warn",
          "control_unavailable",
          `no control socket: ${path}: ${message} (give this soad its own --name NAME, or --control PATH)`
        )
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
        live = Listeners.probeUnix(path)
      } catch {
        live = false
      }
      if (live) return yield* fail("another soad is using it")
      Fs.rmSync(path, { force: true })
    }
    let created: { readonly fd: number; readonly dev: number; readonly ino: number }
    try {
      created = Listeners.listenUnixFile(path, 16, 0o600) // mode 0 until it is 0600: nobody else can connect
    } catch (error) {
      return yield* fail((error as Error).message)
    }
    const fd = created.fd
    const runtime = yield* Effect.runtime<Registry | AppLogs.AppLogs>()
    const myUid = process.getuid?.() ?? 0
    const onSocket = (socket: Net.Socket) => {
      socket.on("error", () => {})
      const credentials = peer(socket)
      if (!peerAllowed(credentials, myUid)) {
        // Read and drop what it sends, so its close is seen: an unread socket would stay open until soad ends.
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
        Runtime.runCallback(runtime)(handle(request, reload), {
          onExit: (exit) =>
            socket.end(
              JSON.stringify(Exit.isSuccess(exit) ? exit.value : { ok: false, error: "internal error" }) + "\n"
            )
        })
      }
      socket.on("data", onData)
    }
    // At the end, the path goes first (finalizers run last to first), then the server: its end destroys every open
    // connection, so an idle client never holds shutdown.
    yield* UnixServer.serve(fd, `the control socket ${path}`, onSocket)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        try {
          const now = Fs.lstatSync(path)
          if (now.ino === created.ino && now.dev === created.dev) Fs.unlinkSync(path)
        } catch {
          // gone already
        }
      })
    )
    yield* event("debug", "control", `control socket: ${path}`, { path })
  })

/** Where `soad logs` writes: the lines on `out`, what the client says about them (lines missed) on `err`. */
export type LogsOutput = Client.LogsOutput

/** Client.logs for Effect callers: the refusal or the connection's error is a ControlError; interruption closes. */
export const logs = (path: string, body: LogsRequest, output: LogsOutput): Effect.Effect<void, ControlError> =>
  Effect.tryPromise({
    try: (signal) => Client.logs(path, body, output, signal),
    catch: (error) => new ControlError({ message: (error as Error).message })
  })

/** Sends one request to the soad whose control socket is at `path` (Client.request for Effect callers). */
export const request = (path: string, body: Request): Effect.Effect<Response, ControlError> =>
  Effect.tryPromise({
    try: (signal) => Client.request(path, body, signal),
    catch: (error) => new ControlError({ message: (error as Error).message })
  })
