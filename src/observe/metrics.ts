/**
 * soad's metrics: counters and the cold-start histogram kept with Effect's Metric module, and the Prometheus
 * text exposition of them plus what is read when scraped (state, uptime, open connections, memory).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Duration from "effect/Duration"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Monotonic from "../core/monotonic.js"
import * as Address from "../Address.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import * as Listeners from "../os/listeners.js"
import * as Procfs from "../os/procfs.js"
import * as Gc from "../os/gc.js"
import { closer } from "../os/serverClose.js"
import { droppedLines, event } from "../Logging.js"
import { Registry, states, statusesOf } from "../Registry.js"
import { SocketService } from "../SocketService.js"

export {
  acceptRefused,
  activations,
  coldStart,
  crashes,
  failedStarts,
  forService,
  idleStops,
  notifyIgnored,
  refusalReasons,
  relayFailures,
  waitingPages
} from "./counters.js"
import * as Counters from "./counters.js"
import { refusalReasons } from "./counters.js"

const escape = (value: string) =>
  /[\\"\n]/.test(value) ? value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n") : value

/**
 * `key="value",…` for these tags, values escaped ("" for none). Written with a loop and `+`: a scrape of 1,000
 * services renders some 28,000 lines, and under soad's --lite-mode each array and closure of a map and join is
 * garbage the scrape pays for (`BENCH_ONLY=page npm run bench`: GET /metrics).
 */
const labelList = (tags: ReadonlyArray<readonly [string, string]>): string => {
  let out = ""
  for (let i = 0; i < tags.length; i++) out += `${i === 0 ? "" : ","}${tags[i]![0]}="${escape(tags[i]![1])}"`
  return out
}

/** A label list in braces, "" for none. */
const braced = (list: string): string => list === "" ? "" : `{${list}}`

const labels = (tags: ReadonlyArray<readonly [string, string]>): string => braced(labelList(tags))

const number = (value: number | bigint) =>
  typeof value === "bigint" ? value.toString() : Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : "-Inf"

/** The counters every service has, at 0 until their first event. */
const perService = [Counters.series.activations, Counters.series.idleStops, Counters.series.crashes, Counters.series.failedStarts]

/** soad's own process, named as Prometheus client libraries name it (process_…). */
const processMetrics = (): Array<string> => {
  const lines: Array<string> = []
  const gauge = (name: string, help: string, value: number | undefined, type = "gauge") => {
    if (value === undefined) return
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${number(value)}`)
  }
  const cpu = process.cpuUsage()
  gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", (cpu.user + cpu.system) / 1e6, "counter")
  gauge("process_resident_memory_bytes", "Resident memory size in bytes.", process.memoryUsage.rss())
  // A date (the epoch's seconds, as Prometheus wants it), hence the wall clock, not the Clock of durations.
  gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", Math.round(Date.now() / 1000 - process.uptime()))
  gauge("process_open_fds", "Number of open file descriptors.", Procfs.openFds())
  gauge("process_max_fds", "Maximum number of open file descriptors.", Procfs.maxFds())
  return lines
}

/** The Prometheus text exposition format (0.0.4) of soad's metrics, now. */
export const exposition: Effect.Effect<string, never, Registry | SocketService> = Effect.gen(function*() {
  const lines: Array<string> = []
  const seen = new Set<string>()
  const header = (name: string, type: string, help: string) => {
    if (seen.has(name)) return
    seen.add(name)
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
  }
  yield* Metric.value(droppedLines) // registers it, so that it reads 0 before any line is dropped
  const registry = yield* Registry
  const services = yield* registry.services
  const statuses = yield* statusesOf(services)
  // Only soad's own (the Effect runtime keeps some of its own too), by family: a family's lines stay together.
  const families = new Map<string, { readonly type: string; readonly help: string; readonly lines: Array<string> }>()
  const family = (name: string, type: string, help: string) => {
    let found = families.get(name)
    if (found === undefined) families.set(name, found = { type, help, lines: [] })
    return found
  }
  /** Which services a family has a series for already: (family, service) pairs, and the accept reason's too. */
  const present = new Set<string>()
  for (const pair of yield* Metric.snapshot) {
    const name = pair.metricKey.name
    if (!name.startsWith("soad_")) continue
    const help = Option.getOrElse(pair.metricKey.description, () => name)
    const tags = pair.metricKey.tags.map((tag) => [tag.key, tag.value] as const)
    present.add(`${name}\n${tags.map(([key, value]) => `${key}=${value}`).join("\n")}`)
    const state = pair.metricState
    if (MetricState.isCounterState(state)) {
      family(name, "counter", help).lines.push(`${name}${labels(tags)} ${number(state.count)}`)
    } else if (MetricState.isHistogramState(state)) {
      const { lines: out } = family(name, "histogram", help)
      for (const [bound, count] of state.buckets) out.push(`${name}_bucket${labels([...tags, ["le", number(bound)]])} ${count}`)
      out.push(`${name}_sum${labels(tags)} ${number(state.sum)}`, `${name}_count${labels(tags)} ${state.count}`)
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", help).lines.push(`${name}${labels(tags)} ${number(state.value)}`)
    }
  }
  // Every service's counters exist (at 0) before their first event, so rate() and alerts see them from the start:
  // written here, not read from their metrics (which would make a hook for each that Effect's registry keeps).
  /** A histogram's `le` labels, each bound's, then +Inf: made once a scrape for each histogram. */
  const les = new Map<string, ReadonlyArray<string>>()
  const lesOf = (name: string, bounds: ReadonlyArray<number>): ReadonlyArray<string> => {
    let found = les.get(name)
    if (found === undefined) les.set(name, found = [...bounds, Infinity].map((bound) => `le="${number(bound)}"`))
    return found
  }
  /** `key` is the tags as `present` has them; `list` as labelList renders them. */
  const zero = (of: Counters.Series, key: string, list: string) => {
    if (present.has(`${of.name}\n${key}`)) return
    if (of.bounds === undefined) {
      family(of.name, "counter", of.help).lines.push(`${of.name}${braced(list)} 0`)
      return
    }
    const { lines: out } = family(of.name, "histogram", of.help)
    const open = list === "" ? "{" : `{${list},`
    for (const le of lesOf(of.name, of.bounds)) out.push(`${of.name}_bucket${open}${le}} 0`)
    out.push(`${of.name}_sum${braced(list)} 0`, `${of.name}_count${braced(list)} 0`)
  }
  for (const status of statuses) {
    const key = `service=${status.name}`
    const list = labelList([["service", status.name]])
    for (const of of perService) zero(of, key, list)
    if (status.relayedBytes !== undefined) zero(Counters.series.relayFailures, key, list)
    if (status.waitingPages !== undefined) zero(Counters.series.waitingPages, key, list)
    if (status.instances !== undefined) {
      for (const reason of refusalReasons) {
        zero(Counters.series.acceptRefused, `${key}\nreason=${reason}`, labelList([["service", status.name], ["reason", reason]]))
      }
    }
    zero(Counters.series.coldStart, key, list)
  }
  for (const name of [...families.keys()].sort((a, b) => a < b ? -1 : a > b ? 1 : 0)) {
    const { help, lines: out, type } = families.get(name)!
    header(name, type, help)
    for (const line of out) lines.push(line)
  }
  // Read at scrape time: where each service stands.
  const sockets = yield* SocketService
  const now = yield* Monotonic.now
  header("soad_service_state", "gauge", "1 for the state each service is in (stopped, starting, running, stopping, failing).")
  const uptime: Array<string> = []
  const open: Array<string> = []
  const memory: Array<string> = []
  const relayed: Array<string> = []
  const peaks: Array<string> = []
  const saved: Array<string> = []
  for (const status of statuses) {
    const list = labelList([["service", status.name]])
    for (const state of states) lines.push(`soad_service_state{${list},state="${state}"} ${status.state === state ? 1 : 0}`)
    const service = braced(list)
    const running = status.pid !== undefined && status.startedAt !== undefined
    uptime.push(`soad_app_uptime_seconds${service} ${running ? (now - status.startedAt!) / 1000 : 0}`)
    open.push(`soad_open_connections${service} ${status.openConnections ?? (yield* sockets.openConnections(status.listeners))}`)
    if (status.relayedBytes !== undefined) {
      relayed.push(`soad_relayed_bytes_total{${list},direction="in"} ${status.relayedBytes.in}`)
      relayed.push(`soad_relayed_bytes_total{${list},direction="out"} ${status.relayedBytes.out}`)
    }
    if (running) memory.push(`soad_app_resident_memory_bytes${service} ${Procfs.groupResidentBytes(status.pid!)}`)
    if (status.peakMemory !== undefined) peaks.push(`soad_app_peak_resident_memory_bytes${service} ${status.peakMemory}`)
    saved.push(`soad_saved_memory_byte_seconds_total${service} ${number(Math.round(status.savedByteSeconds ?? 0))}`)
  }
  header("soad_app_uptime_seconds", "gauge", "How long the app of each service has been running (0: not running).")
  lines.push(...uptime)
  header("soad_open_connections", "gauge", "Accepted connections to each service's listeners still open.")
  lines.push(...open)
  header("soad_app_resident_memory_bytes", "gauge", "Resident memory of each running app, summed over its process group.")
  lines.push(...memory)
  if (relayed.length > 0) {
    header("soad_relayed_bytes_total", "counter", "Proxy mode: bytes relayed from clients to the app (in) and back (out).")
    lines.push(...relayed)
  }
  header(
    "soad_app_peak_resident_memory_bytes",
    "gauge",
    "Peak memory of each app while it ran (this run, else the latest): cgroup memory.peak, else the largest sampled RSS of its process group."
  )
  lines.push(...peaks)
  header("soad_saved_memory_byte_seconds_total", "counter", "RAM-time each service saved while its app was stopped: its peak memory × the time stopped.")
  lines.push(...saved)
  header("soad_resident_memory_bytes", "gauge", "soad's own resident memory.")
  lines.push(`soad_resident_memory_bytes ${process.memoryUsage.rss()}`)
  lines.push(...processMetrics())
  return lines.join("\n") + "\n"
})

/** How long after a scrape (or a status page) its garbage is given back to the system. */
const scrapeSettle = Duration.seconds(5)

/** The metrics socket file: mode 0666 less soad's umask (unlike an app's socket: the figures are soad's own), soad's owner. */
const metricsSocket = (): ServiceConfig.SocketOptions => ({ backlog: 511, mode: 0o666 & ~process.umask(), uid: undefined, gid: undefined })

/** The metrics endpoint could not be opened. */
export class MetricsError extends Data.TaggedError("MetricsError")<{ readonly message: string }> {}

/**
 * The status page's headers: no caching, and a policy that lets the page load nothing and run no script at all,
 * so even a text that escaped the escaping could not act (the page needs only its inline style).
 */
const pageHeaders = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer"
}

/**
 * Serves over HTTP at `address` (host:port or a UNIX socket path) until the scope closes: GET /metrics, the
 * exposition; GET /, the status page (observe/statusPage.ts). node:http and the page are loaded only when metrics
 * are asked for.
 */
export const serve = (
  address: Address.Address
): Effect.Effect<void, MetricsError, Registry | SocketService | Scope.Scope> =>
  Effect.gen(function*() {
    const Http = yield* Effect.promise(() => import("node:http"))
    const StatusPage = yield* Effect.promise(() => import("./statusPage.js"))
    const runtime = yield* Effect.runtime<Registry | SocketService>()
    // An answer of many services leaves MB of garbage that V8 keeps for a long while: the memory is given back a few
    // seconds after a scrape (at most once per scrapeSettle, in a fiber of this scope).
    const fork = yield* FiberSet.makeRuntime<never, void, never>()
    let settling = false
    const settleLater = () => {
      if (settling) return
      settling = true
      void fork(Effect.delay(Effect.sync(() => {
        settling = false
        Gc.collectGarbageNow()
      }), scrapeSettle))
    }
    const server = Http.createServer((request, response) => {
      // HEAD answers as GET does, without the body (node:http leaves it out).
      if ((request.method !== "GET" && request.method !== "HEAD") || (request.url !== "/metrics" && request.url !== "/")) {
        response.writeHead(404).end("not found: GET / (the status page) or GET /metrics\n")
        return
      }
      const [body, headers] = request.url === "/"
        ? [StatusPage.page, pageHeaders] as const
        : [exposition, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }] as const
      Runtime.runCallback(runtime)(body, {
        onExit: (exit) => {
          if (Exit.isSuccess(exit)) {
            response.writeHead(200, { ...headers, "content-length": Buffer.byteLength(exit.value) }).end(exit.value)
          } else response.writeHead(500).end("internal error\n")
          settleLater()
        }
      })
    })
    let target: { readonly fd: number } | { readonly host: string; readonly port: number }
    if (address._tag === "Unix") {
      // The same rules as a listener: a stale socket is replaced, anything else stays and is an error; the file
      // appears complete, and is removed at exit only if it is still this socket.
      const fd = yield* Listeners.openUnixServed(address.path, metricsSocket()).pipe(
        Effect.mapError((error) => new MetricsError({ message: `--metrics ${error.message}` }))
      )
      target = { fd } // node:http owns (and closes) this copy; the scope closes soad's fd
    } else if (address._tag === "Tcp") {
      target = { host: address.host, port: address.port }
    } else {
      return yield* Effect.fail(new MetricsError({ message: `--metrics: use HOST:PORT or a socket path` }))
    }
    // A keep-alive client, or one that connects and sends nothing, must not hold shutdown: the release ends
    // every open connection (see serverClose.ts).
    const close = closer(server)
    yield* Effect.acquireRelease(
      Effect.async<void, MetricsError>((resume) => {
        server.once("error", (error: NodeJS.ErrnoException) =>
          resume(Effect.fail(new MetricsError({
            message: `--metrics ${Address.format(address)}: ${
              error.code === "EADDRINUSE" ? "already in use: choose another address" : error.message
            }`
          }))))
        server.listen(target, () => resume(Effect.void))
      }),
      () => close
    )
    yield* event(
      "info",
      "metrics",
      `metrics on http://${Address.format(address)}/metrics, the status page on http://${Address.format(address)}/`,
      { address: Address.format(address) }
    )
  })
