/**
 * `--accept`: a process per connection (inetd, systemd `Accept=yes`). soad accepts each connection and runs the
 * command for it alone, with the connection as its fds 0, 1 and 3 (`LISTEN_FDS=1`, `LISTEN_FDNAMES=connection`,
 * `REMOTE_ADDR`/`REMOTE_PORT` for TCP). At most `maxConnections` instances run at once: a permit is taken before a
 * connection is accepted, so further connections wait in the kernel's backlog, never accepted and then closed.
 * No client can take every instance: one source (an IP address, a UNIX peer's uid) runs at most
 * `maxConnectionsPerSource`, and a connection beyond it is closed at once, as systemd does; and instances start at
 * most at `maxAcceptRate` (a token bucket): beyond it soad accepts nothing until a token is due (modes/acceptLimits.ts).
 * Each instance ends with its connection (no idle timeout); a stop or shutdown stops every instance gracefully.
 * Built only from SocketService, ProcessService and the Clock, so it runs against the fakes under TestClock.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as ServiceConfig from "../ServiceConfig.js"
import * as AcceptLimits from "./acceptLimits.js"
import { count, failedWith, logFailing, now, spawnRequest, stopPolicy } from "../core/lifecycle.js"
import * as Shell from "../core/shell.js"
import * as Format from "../observe/format.js"
import { event } from "../Logging.js"
import * as Counters from "../observe/counters.js"
import * as Exhaustion from "../core/exhaustion.js"
import * as Refusals from "./refusals.js"
import { type App, ProcessService, type SpawnError, type SpawnRequest } from "../ProcessService.js"
import { Registry, type Status } from "../Registry.js"
import type { AcceptError, Connection, Listener } from "../SocketService.js"
import { SocketService } from "../SocketService.js"

/** Out of fds or memory, accepting pauses: 100 ms, doubling, at most 1 s between tries. */
const exhaustedPause = Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(1))))

/** Is this failure the system's lack of file descriptors (not the command's)? */
const isExhaustion = (error: SpawnError): boolean => error.code === "EMFILE" || error.code === "ENFILE"

/** The instance's spawn request: the connection as fds 0, 1 and 3, named `connection`, and its peer for TCP. */
export const instanceRequest = (config: ServiceConfig.ServiceConfig, connection: Connection): SpawnRequest => {
  const remote = connection.remote === undefined
    ? {}
    : { REMOTE_ADDR: connection.remote.ip, REMOTE_PORT: String(connection.remote.port) }
  return { ...spawnRequest(config, [], remote), fds: [connection.fd], fdNames: ["connection"], connection: connection.fd }
}

/** Where a connection came from, for the log. */
const from = (connection: Connection, listener: Listener): string =>
  connection.remote === undefined
    ? `on ${listener.description}`
    : `from ${connection.remote.ip.includes(":") ? `[${connection.remote.ip}]` : connection.remote.ip}:${connection.remote.port}`

/**
 * Accept mode as the shell (core/shell.ts) runs it: `next` waits until a permit is free and a connection waits;
 * `act` takes it (the rate, the source's share) and starts its instance, which runs in a FiberSet beside the loop;
 * a failed start moves the shell's backoff, and the start limit makes the service failed like any other.
 */
const acceptMode = (sockets: SocketService["Type"], processes: ProcessService["Type"]) => (service: Shell.Service) =>
  Effect.gen(function*() {
    const { backoff, config, listeners, tracker } = service
    const permits = yield* Effect.makeSemaphore(config.maxConnections)
    const instances = yield* FiberSet.make<void>()
    let running = 0
    let lastAccepted: number | undefined
    let lastStarted: number | undefined
    const registry = yield* Effect.serviceOption(Registry)
    const name = config.name
    const sources = new AcceptLimits.Sources()
    const limitOf = (source: AcceptLimits.Source) => ServiceConfig.perSourceLimit(config, source.kind)
    const bucket = yield* AcceptLimits.bucket(config.maxAcceptRate)
    const rate = `${config.maxAcceptRate.count}/${Duration.format(config.maxAcceptRate.per)}`
    const refusedPerSource = Metric.tagged(Counters.forService(Counters.acceptRefused, name), "reason", "per_source")
    // A client that keeps connecting while its source has its share could write a line per connection: at most one
    // a second, with the count.
    const sayRefused = yield* AcceptLimits.throttled(Duration.seconds(1), (count, source: AcceptLimits.Source) => {
      const limit = limitOf(source)
      const instances = `${limit} instance${limit === 1 ? "" : "s"}`
      return event(
        "warn",
        "accept_refused",
        count === 1
          ? `refused a connection from ${source.text}: it has ${instances} running already (--max-connections-per-source)`
          : `refused ${count} more connections in the last second from sources with their share running already ` +
            `(--max-connections-per-source), the latest from ${source.text} (${instances})`,
        { reason: "per_source", count, source: source.text, max_connections_per_source: limit }
      )
    })

    /** Logs why an interrupted instance stops, in the shell's words: the stop reason, else soad is shutting down. */
    const logStop = (pid: number) =>
      Effect.gen(function*() {
        const signal = config.shutdownSignal.name
        const why = yield* Ref.get(service.stopReason)
        yield* why === undefined
          ? event("info", "stopping", `soad is shutting down: stopping the instance (pid ${pid}) with ${signal}`, { pid, reason: "shutdown" })
          : event("info", "stopping", `stopping the instance (pid ${pid}) ${why} with ${signal}`, {
            pid,
            reason: why.startsWith("on request") ? "requested" : "reload"
          })
      })

    /** An instance runs until it exits by itself; interrupted (shutdown, `soad sleep`), it is stopped. */
    const watch = (app: App, startedAt: number) =>
      Effect.gen(function*() {
        const status = yield* app.exit
        const uptime = (yield* now) - startedAt
        const fields = { pid: app.pid, code: status.code, signal: status.signal, uptime_ms: uptime }
        if (status.code === 0) {
          return yield* event("debug", "instance_exited", `instance (pid ${app.pid}) exited (code 0, ${Format.seconds(uptime)})`, fields)
        }
        const message = `instance (pid ${app.pid}) exited with ${Format.exit(status)} after ${Format.seconds(uptime)}`
        yield* count(tracker, "crashes")
        yield* failedWith(tracker, message)
        yield* event("warn", "instance_exited", message, fields)
      }).pipe(
        Effect.onInterrupt(() =>
          Effect.gen(function*() {
            yield* logStop(app.pid)
            const status = yield* app.stop
            yield* event("info", "instance_exited", `instance (pid ${app.pid}) exited (${Format.exit(status)})`, {
              pid: app.pid,
              code: status.code,
              signal: status.signal
            })
          })
        )
      )

    /** Out of fds for an instance's pipes or its fork: said once per episode (`fd_exhausted`, `fd_recovered`). */
    const outOfFds = Exhaustion.episodes(
      "fd_exhausted",
      (code) =>
        `out of file descriptors (${code}) for an instance: the connection waits for it, new connections ` +
        "wait in the backlog; raise the limit (ulimit -n, LimitNOFILE=) or lower --max-connections",
      "fd_recovered",
      "file descriptors are available again: starting instances"
    )

    /**
     * Starts the instance for a connection soad has taken. Out of file descriptors (EMFILE, ENFILE: the log pipe
     * or the fork), the connection is kept, not closed: the start is tried again (100 ms, doubling to 1 s) while
     * new connections wait in the backlog, as when accept itself runs out.
     */
    const startInstance = (connection: Connection) =>
      processes.spawn(instanceRequest(config, connection), stopPolicy(service.config)).pipe(
        Effect.tapError((error) => isExhaustion(error) ? outOfFds.began(error.code) : Effect.void),
        Effect.retry({ schedule: exhaustedPause, while: isExhaustion }),
        Effect.tap(() => outOfFds.ended)
      )

    /**
     * Accepts one connection on `listener` and starts its instance, holding one permit and one instance of its
     * source: the instance gives them back when it ends; so does a connection gone before it was taken, or one no
     * instance could be started for. soad's copy of the connection is closed as soon as the spawn has returned, and
     * at once if its source has its share already (the start's token is given back: a refusal starts nothing).
     */
    const takeOne = (listener: Listener): Effect.Effect<void, AcceptError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          yield* permits.take(1)
          const scope = yield* Scope.make()
          let held: string | undefined
          const releaseSource = Effect.sync(() => {
            if (held !== undefined) sources.release(held)
            held = undefined
          })
          const giveBack = Effect.zipRight(Scope.close(scope, Exit.void), Effect.zipRight(releaseSource, permits.release(1)))
          const taken = yield* Effect.scoped(Effect.gen(function*() {
            const connection = yield* sockets.accept(listener)
            if (connection === undefined) return undefined
            const source = AcceptLimits.sourceOf(connection)
            if (!sources.take(source.key, limitOf(source))) return { _tag: "Refused", source } as const
            held = source.key
            const spawned = yield* Effect.either(
              restore(startInstance(connection)).pipe(Scope.extend(scope), Effect.onInterrupt(() => giveBack))
            )
            return { _tag: "Taken", connection, source, spawned } as const
          })).pipe(Effect.tapError(() => Effect.zipRight(bucket.refund, giveBack)))
          if (taken === undefined) return yield* Effect.zipRight(bucket.refund, giveBack)
          if (taken._tag === "Refused") {
            yield* Effect.zipRight(bucket.refund, giveBack)
            yield* Metric.increment(refusedPerSource)
            return yield* sayRefused(taken.source)
          }
          const { connection, source, spawned } = taken
          const at = yield* now
          lastAccepted = at
          if (spawned._tag === "Left") {
            const error = spawned.left
            yield* giveBack
            yield* count(tracker, "failedStarts")
            yield* failedWith(tracker, `cannot start the app: ${error.message}`)
            const state = yield* backoff.failed
            yield* event(
              "error",
              "start_failed",
              `cannot start an instance for a connection ${from(connection, listener)}: ${error.message}; ` +
                `next try in ${Format.seconds(Math.max(0, state.notBefore - at))}`,
              { code: error.code, failures: state.failures }
            )
            if (state.gaveUp) yield* logFailing(state, at, config)
            return
          }
          const app = spawned.right
          yield* backoff.reset
          running++
          lastStarted = at
          yield* count(tracker, "activations")
          if (Option.isSome(registry)) yield* registry.value.record({ starts: 1 })
          yield* event("debug", "instance_started", `instance started (pid ${app.pid}) for a connection ${from(connection, listener)}`, {
            pid: app.pid,
            remote_addr: connection.remote?.ip,
            remote_port: connection.remote?.port,
            source: source.text,
            running
          })
          yield* FiberSet.run(
            instances,
            restore(watch(app, at)).pipe(
              Effect.ensuring(Effect.zipRight(Effect.sync(() => running--), giveBack))
            )
          ).pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : giveBack))
        })
      )

    /**
     * Past the rate, accepting waits for the next token (connections wait in the backlog): said once, when it
     * begins, until the bucket has refilled completely.
     */
    let limited = false
    const pace = Effect.gen(function*() {
      const { full, waited } = yield* bucket.take
      if (full) limited = false
      if (waited === 0 || limited) return
      limited = true
      yield* event(
        "info",
        "accept_rate_limited",
        `more than ${rate} connections: accepting one every ${Format.seconds(Duration.toMillis(config.maxAcceptRate.per) / config.maxAcceptRate.count)}, ` +
          "the others wait in the backlog (--max-accept-rate; said once until the rate drops)",
        { max_accept_rate: rate }
      )
    })

    /** Accepting failed (out of fds, most often): said once per episode; accepting pauses and tries again. */
    const acceptFailed = Exhaustion.episodes(
      "accept_failed",
      (message) => `${message}: pausing, then accepting again (said once until it works)`,
      "accept_recovered",
      "accepting again"
    )

    /** The rate, then the connection and its instance; out of fds, paused and tried again until it works. */
    const act = (trigger: Shell.Trigger) =>
      trigger._tag === "Wake" || trigger.listener === undefined ? Effect.void : Effect.zipRight(
        pace,
        takeOne(trigger.listener).pipe(
          Effect.tapError((error) => acceptFailed.began(error.message, { code: error.code })),
          Effect.retry(exhaustedPause), // for ever: the schedule never ends
          Effect.orDie,
          Effect.zipRight(acceptFailed.ended)
        )
      )

    yield* event(
      "info",
      "accept_mode",
      `a process per connection: at most ${config.maxConnections} at once, more wait in the backlog; ` +
        `${ServiceConfig.perSourceText(config)}, more are refused; at most ${rate} started`,
      {
        max_connections: config.maxConnections,
        max_connections_per_address: ServiceConfig.perSourceLimit(config, "ip"),
        max_connections_per_uid: ServiceConfig.perSourceLimit(config, "unix"),
        max_accept_rate: rate
      }
    )

    return {
      // Only while a permit is free: beyond --max-connections, connections wait in the backlog, not in soad.
      next: Effect.map(
        permits.withPermits(1)(sockets.awaitReadable(listeners)),
        (listener): Shell.Trigger | undefined => listener === undefined ? undefined : { _tag: "Connection", listener }
      ),
      stillWaiting: sockets.isPending(listeners),
      act,
      refuse: Refusals.closeWaiting(sockets, listeners, name),
      status: Effect.sync((): Partial<Status> => ({
        ...(running > 0 ? { state: "running" } : {}),
        instances: running,
        lastActivity: lastAccepted,
        lastStart: lastStarted === undefined ? undefined : { at: lastStarted, coldStartMs: undefined }
      })),
      wake: Effect.succeed("accept mode: an instance starts for each connection"),
      sleep: Effect.gen(function*() {
        const count = yield* FiberSet.size(instances)
        if (count === 0) return "not running"
        yield* Ref.set(service.stopReason, "on request (soad sleep)")
        yield* Effect.ensuring(FiberSet.clear(instances), Ref.set(service.stopReason, undefined))
        return `stopped ${count} instance${count === 1 ? "" : "s"}`
      })
    } satisfies Shell.Mode<never>
  })

/**
 * Serves a service in accept mode on listeners already open, forever. Interrupting it stops every running
 * instance gracefully (the shutdown signal, SIGKILL after the stop timeout, the group and cgroup killed).
 */
export const serve = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>
): Effect.Effect<never, never, SocketService | ProcessService> =>
  Effect.flatMap(
    Effect.zip(SocketService, ProcessService),
    ([sockets, processes]) => Shell.serve(config, listeners, acceptMode(sockets, processes))
  )
