/**
 * `--accept`: a process per connection (inetd, systemd `Accept=yes`). soad accepts each connection and runs the
 * command for it alone, with the connection as its fds 0, 1 and 3 (`LISTEN_FDS=1`, `LISTEN_FDNAMES=connection`,
 * `REMOTE_ADDR`/`REMOTE_PORT` for TCP). At most `maxConnections` instances run at once: a permit is taken before a
 * connection is accepted, so further connections wait in the kernel's backlog, never accepted and then closed.
 * No client can take every instance: one source (an IP address, a UNIX peer's uid) runs at most
 * `maxConnectionsPerSource`, and a connection beyond it is closed at once, as systemd does; and instances start at
 * most at `maxAcceptRate` (a token bucket): beyond it soad accepts nothing until a token is due (modes/acceptLimits.ts).
 * Each instance ends with its connection (no idle timeout); a stop or shutdown stops every instance gracefully.
 * Where the driver can (Linux), connections are taken and instances started in its own callback (the lane,
 * ProcessService.acceptLane): the bookkeeping of a connection is plain calls there, with no fiber, and the serve
 * loop only hears of what it must decide (a failure, a wait for a token). Built only from SocketService,
 * ProcessService and the Clock, so it runs against the fakes under TestClock.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type { Budget } from "../Budget.js"
import type { AppLogs } from "../observe/appLogs.js"
import * as ServiceConfig from "../ServiceConfig.js"
import * as AcceptLimits from "./acceptLimits.js"
import { count, failedWith, logFailing, now, spawnRequest, stopPolicy } from "../core/lifecycle.js"
import * as Monotonic from "../core/monotonic.js"
import * as Shell from "../core/shell.js"
import * as Format from "../observe/format.js"
import { event } from "../Logging.js"
import * as Counters from "../observe/counters.js"
import * as Exhaustion from "../core/exhaustion.js"
import * as Refusals from "./refusals.js"
import {
  type App,
  type ExitStatus,
  type Lane,
  type LaneEvents,
  type Peer,
  ProcessService,
  type SpawnError,
  type SpawnRequest
} from "../ProcessService.js"
import type { Registry, Status } from "../Registry.js"
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
const from = (connection: Peer, listener: Listener): string =>
  connection.remote === undefined
    ? `on ${listener.description}`
    : `from ${connection.remote.ip.includes(":") ? `[${connection.remote.ip}]` : connection.remote.ip}:${connection.remote.port}`

/** An instance the lane started: its app, the source it counts for, when it started (Clock ms). */
interface LaneInstance {
  readonly app: App
  readonly source: string
  readonly startedAt: number
}

/**
 * Accept mode as the shell (core/shell.ts) runs it: `next` waits until a permit is free and a connection waits;
 * `act` takes it (the rate, the source's share) and starts its instance, which runs in a FiberSet beside the loop;
 * a failed start moves the shell's backoff, and the start limit makes the service failed like any other.
 *
 * With a lane (the driver's own accept, where it has one) and no failure behind, `next` instead gives the lane a
 * start (a permit held, a token taken) and the lane goes on by itself: each instance's start and end is booked in
 * its callbacks, which give the next start at once while a permit is free and a token there. `next` returns only
 * for what the loop must decide: a failed start (act says it and the backoff moves; the next connections take the
 * path above until a start succeeds), a connection kept for lack of fds, an accept that failed, or a wait for a token.
 */
const acceptMode = (
  sockets: SocketService["Type"],
  processes: ProcessService["Type"],
  mode: ServiceConfig.Accept
) =>
(service: Shell.Service) =>
  Effect.gen(function*() {
    const { backoff, config, listeners, tracker } = service
    const permits = new AcceptLimits.Permits(mode.maxConnections)
    const instances = yield* FiberSet.make<void>()
    const laneInstances = new Map<number, LaneInstance>()
    let running = 0
    let lastAccepted: number | undefined
    let lastStarted: number | undefined
    const registry = tracker.registry
    const name = config.name
    const sources = new AcceptLimits.Sources()
    const limitOf = (source: AcceptLimits.Source) => ServiceConfig.perSourceLimit(mode, source.kind)
    const bucket = yield* AcceptLimits.bucket(mode.maxAcceptRate)
    const rate = `${mode.maxAcceptRate.count}/${Duration.format(mode.maxAcceptRate.per)}`
    const refusedPerSource = Metric.tagged(Counters.forService(Counters.acceptRefused, name), "reason", "per_source")
    // The lane's callbacks run outside any fiber: what they log or update in Effect runs on this runtime (this
    // fiber's logger, annotations and Clock), only where it must. A debug event that the level drops still cost
    // 58 µs as an Effect of its own (measured under --lite-mode), so it is not run at all then.
    const runtime = yield* Effect.runtime<never>()
    /** Runs `effect` now, from a callback; it never throws into the driver that called: a failure is logged. */
    const runSync = (effect: Effect.Effect<void>) => {
      const exit = Runtime.runSyncExit(runtime)(effect)
      if (Exit.isFailure(exit)) Runtime.runFork(runtime)(Effect.logError("accept mode's bookkeeping failed", exit.cause))
    }
    const clock = yield* Effect.clock
    const debug = LogLevel.lessThanEqual(yield* FiberRef.get(FiberRef.currentMinimumLogLevel), LogLevel.Debug)
    // One Effect run a start from the lane: the service's count (status reads it back, with its metric) and the
    // registry's.
    const booked = Effect.zipRight(count(tracker, "activations"), registry.record({ starts: 1 }))
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

    /** An instance exited by itself after `uptime` ms: logged (debug if with 0), a crash counted and kept as the last error. */
    const exitedItself = (pid: number, status: ExitStatus, uptime: number) =>
      Effect.gen(function*() {
        const fields = { pid, code: status.code, signal: status.signal, uptime_ms: uptime }
        if (status.code === 0) {
          return yield* event("debug", "instance_exited", `instance (pid ${pid}) exited (code 0, ${Format.seconds(uptime)})`, fields)
        }
        const message = `instance (pid ${pid}) exited with ${Format.exit(status)} after ${Format.seconds(uptime)}`
        yield* count(tracker, "crashes")
        yield* failedWith(tracker, message)
        yield* event("warn", "instance_exited", message, fields)
      })

    /** Stops an instance (shutdown, `soad sleep`) by the stop policy, saying why and how it ended. */
    const stopInstance = (app: App) =>
      Effect.gen(function*() {
        yield* logStop(app.pid)
        const status = yield* app.stop
        yield* event("info", "instance_exited", `instance (pid ${app.pid}) exited (${Format.exit(status)})`, {
          pid: app.pid,
          code: status.code,
          signal: status.signal
        })
      })

    /** An instance runs until it exits by itself; interrupted (shutdown, `soad sleep`), it is stopped. */
    const watch = (app: App, startedAt: number) =>
      Effect.flatMap(app.exit, (status) => Effect.flatMap(now, (at) => exitedItself(app.pid, status, at - startedAt))).pipe(
        Effect.onInterrupt(() => stopInstance(app))
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

    /** A start failed (not for lack of fds): counted, kept as the last error, said; the backoff (and start limit) moves. */
    const startFailed = (error: SpawnError, what: string) =>
      Effect.gen(function*() {
        const at = yield* now
        yield* count(tracker, "failedStarts")
        yield* failedWith(tracker, `cannot start the app: ${error.message}`)
        const state = yield* backoff.failed
        yield* event(
          "error",
          "start_failed",
          `cannot start an instance${what}: ${error.message}; next try in ${Format.seconds(Math.max(0, state.notBefore - at))}`,
          { code: error.code, failures: state.failures }
        )
        if (state.gaveUp) yield* logFailing(state, at, config)
      })

    /** A permit is given back (an instance ended, or never started): the lane, if it waits for one, goes on. */
    const releasePermit = () => {
      permits.release()
      refill()
    }

    /**
     * Accepts one connection on `listener` (`obtain`) and starts its instance, holding one permit and one instance
     * of its source: the instance gives them back when it ends; so does a connection gone before it was taken, or
     * one no instance could be started for. soad's copy of the connection is closed as soon as the spawn has
     * returned, and at once if its source has its share already (the start's token is given back: a refusal starts
     * nothing).
     */
    const takeOne = (
      listener: Listener,
      obtain: Effect.Effect<Connection | undefined, AcceptError, Scope.Scope>
    ): Effect.Effect<void, AcceptError, AppLogs> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          yield* permits.take
          const scope = yield* Scope.make()
          let held: string | undefined
          const releaseSource = Effect.sync(() => {
            if (held !== undefined) sources.release(held)
            held = undefined
          })
          const giveBack = Effect.zipRight(Scope.close(scope, Exit.void), Effect.zipRight(releaseSource, Effect.sync(releasePermit)))
          const taken = yield* Effect.scoped(Effect.gen(function*() {
            const connection = yield* obtain
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
            yield* giveBack
            return yield* startFailed(spawned.left, ` for a connection ${from(connection, listener)}`)
          }
          const app = spawned.right
          yield* backoff.reset
          running++
          lastStarted = at
          yield* booked
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
      yield* rateLimited
    })
    const rateLimited = event(
      "info",
      "accept_rate_limited",
      `more than ${rate} connections: accepting one every ${Format.seconds(Duration.toMillis(mode.maxAcceptRate.per) / mode.maxAcceptRate.count)}, ` +
        "the others wait in the backlog (--max-accept-rate; said once until the rate drops)",
      { max_accept_rate: rate }
    )

    /** Accepting failed (out of fds, most often): said once per episode; accepting pauses and tries again. */
    const acceptFailed = Exhaustion.episodes(
      "accept_failed",
      (message) => `${message}: pausing, then accepting again (said once until it works)`,
      "accept_recovered",
      "accepting again"
    )

    // ---------------------------------------------------------------- the lane

    let lane: Lane | undefined
    /**
     * The lane's state: "off" (the serve loop waits or acts), "given" (a start is given: the next connection
     * admitted takes it), "wanting" (it runs, but no permit was free: the next instance to end gives the start).
     * `end` returns to the serve loop.
     */
    let lanePhase: "off" | "given" | "wanting" = "off"
    let laneEnd: ((trigger: Shell.Trigger | undefined) => void) | undefined
    /** The connection admitted, between `admit` and `started` or `failed`. */
    let admitted: { readonly source: AcceptLimits.Source; readonly peer: Peer; readonly listener: Listener } | undefined
    /** What the lane left for `act`: a connection kept for lack of fds (its start is tried again), or a failed start. */
    let kept: { readonly listener: Listener; readonly connection: Connection; readonly close: () => void } | undefined
    let failure: { readonly error: SpawnError; readonly what: string } | undefined

    /** The lane stops; the serve loop goes on with `trigger` (undefined: it waits for a permit and a token first). */
    const stopLane = (trigger: Shell.Trigger | undefined) => {
      const end = laneEnd
      lanePhase = "off"
      laneEnd = undefined
      end?.(trigger)
    }

    /** Gives the lane a start, for which a permit is held and a token is there. A cgroup that cannot be made fails the start. */
    const give = (to: Lane) => {
      const error = to.give()
      if (error === undefined) {
        lanePhase = "given"
        return
      }
      permits.release()
      failure = { error, what: "" }
      stopLane({ _tag: "Connection", started: Either.left(error) })
    }

    /** The lane wants a start: given at once if a permit is free and a token there; without a token the loop waits. */
    function refill() {
      if (lanePhase !== "wanting" || lane === undefined) return
      if (!bucket.available(Monotonic.unsafeNow(clock))) return stopLane(undefined)
      if (permits.tryTake()) give(lane)
    }

    /** A connection used the start given: its token is taken now (it was there when the start was given). */
    const takeToken = (at: number) => {
      if (bucket.takeNow(at)?.full === true) limited = false
    }

    /** An instance of the lane is gone: its permit and its source's share given back. */
    const laneInstanceGone = (instance: LaneInstance) => {
      running--
      sources.release(instance.source)
      releasePermit()
    }

    const laneEvents: LaneEvents = {
      admit: (index, peer) => {
        const source = AcceptLimits.sourceOf(peer)
        if (!sources.take(source.key, limitOf(source))) {
          refusedPerSource.unsafeUpdate(1, [])
          runSync(sayRefused(source))
          return false
        }
        admitted = { source, peer, listener: listeners[index] ?? listeners[0]! }
        return true
      },
      // admit said yes to the connection whose start (or failure) this is: the driver asks before each start.
      started: (app) => {
        const taken = admitted!
        admitted = undefined
        const at = Monotonic.unsafeNow(clock)
        takeToken(at)
        lastAccepted = at
        lastStarted = at
        running++
        laneInstances.set(app.pid, { app, source: taken.source.key, startedAt: at })
        runSync(booked)
        if (debug) {
          runSync(event("debug", "instance_started", `instance started (pid ${app.pid}) for a connection ${from(taken.peer, taken.listener)}`, {
            pid: app.pid,
            remote_addr: taken.peer.remote?.ip,
            remote_port: taken.peer.remote?.port,
            source: taken.source.text,
            running
          }))
        }
        lanePhase = "wanting"
        refill()
      },
      failed: (error, connection) => {
        const taken = admitted!
        admitted = undefined
        lastAccepted = Monotonic.unsafeNow(clock)
        takeToken(lastAccepted)
        sources.release(taken.source.key)
        permits.release()
        if (isExhaustion(error)) kept = { listener: taken.listener, connection: { fd: connection.fd, ...taken.peer }, close: connection.close }
        else {
          connection.close()
          failure = { error, what: ` for a connection ${from(taken.peer, taken.listener)}` }
        }
        stopLane({ _tag: "Connection", listener: taken.listener, started: Either.left(error) })
      },
      acceptFailed: (index) => {
        permits.release()
        // The serve loop accepts by itself now: it says the failure once, pauses, and tries again.
        stopLane({ _tag: "Connection", listener: listeners[index] })
      },
      exited: (app, status) => {
        const instance = laneInstances.get(app.pid)
        if (instance === undefined) return
        laneInstances.delete(app.pid)
        laneInstanceGone(instance)
        if (status.code !== 0 || debug) runSync(exitedItself(app.pid, status, Monotonic.unsafeNow(clock) - instance.startedAt))
      }
    }

    /** Stops the lane's instance `pid` (shutdown, `soad sleep`), then gives back what it held. */
    const stopLaneInstance = (instance: LaneInstance) =>
      Effect.ensuring(
        stopInstance(instance.app),
        Effect.sync(() => {
          if (laneInstances.delete(instance.app.pid)) laneInstanceGone(instance)
        })
      )

    /**
     * Every instance stopped at once, both kinds (each by the stop policy): the fibers of the path above are
     * interrupted together (FiberSet.clear would wait for each in turn, a stop timeout each).
     */
    const stopAll = Effect.suspend(() =>
      Effect.all([
        Fiber.interruptAll([...instances]),
        Effect.forEach([...laneInstances.values()], stopLaneInstance, { concurrency: "unbounded", discard: true })
      ], { concurrency: 2, discard: true })
    )
    yield* Effect.addFinalizer(() => stopAll)

    // After the finalizer: the lane ends before the instances are stopped.
    if (processes.acceptLane !== undefined) {
      const armed = yield* Effect.either(
        processes.acceptLane(listeners.map((listener) => listener.fd), instanceRequest(config, { fd: -1 }), stopPolicy(service.config), laneEvents)
      )
      // Not armed (the command cannot be found, say): the path above starts instances, and says why one fails.
      lane = Either.getOrUndefined(armed)
    }

    /** The lane runs with a start given until it returns to the serve loop; an interruption takes the start back. */
    const runLane = (to: Lane) =>
      Effect.async<Shell.Trigger | undefined>((resume) => {
        if (!permits.tryTake()) return resume(Effect.succeed(undefined))
        laneEnd = (trigger) => resume(Effect.succeed(trigger))
        give(to)
        return Effect.sync(() => {
          if (lanePhase === "given" && to.takeBack()) permits.release()
          lanePhase = "off"
          laneEnd = undefined
        })
      })

    /** The lane's pace: it waits for a token (said once, as `pace` says it), taken when a connection uses it. */
    const laneReady = Effect.gen(function*() {
      const waited = yield* bucket.ready
      if (waited === 0 || limited) return
      limited = true
      yield* rateLimited
    })

    /** A permit, a token, then the lane, again and again until it has something for the serve loop. */
    const laneNext = (to: Lane): Effect.Effect<Shell.Trigger> =>
      Effect.gen(function*() {
        for (;;) {
          yield* permits.free
          yield* laneReady
          const trigger = yield* runLane(to)
          if (trigger !== undefined) return trigger
        }
      })

    // ---------------------------------------------------------------- the serve loop's side

    /** Waits until a permit is free and a connection waits (beyond --max-connections they wait in the backlog). */
    const waitForConnection = Effect.zipRight(
      permits.free,
      Effect.map(
        sockets.awaitReadable(listeners),
        (listener): Shell.Trigger | undefined => listener === undefined ? undefined : { _tag: "Connection", listener }
      )
    )

    /** The connection the lane kept for lack of fds, as `takeOne` obtains one: closed once its instance has it. */
    const keptConnection = (taken: NonNullable<typeof kept>) =>
      Effect.acquireRelease(Effect.succeed(taken.connection), () => Effect.sync(taken.close))

    /** The rate, then the connection and its instance; out of fds, paused and tried again until it works. */
    const act = (trigger: Shell.Trigger): Effect.Effect<void, never, AppLogs> => {
      if (trigger._tag === "Wake") return Effect.void
      const keep = kept
      const failed = failure
      kept = undefined
      failure = undefined
      // Its token was taken by the lane.
      if (keep !== undefined) return Effect.orDie(takeOne(keep.listener, keptConnection(keep)))
      if (failed !== undefined) return startFailed(failed.error, failed.what)
      const listener = trigger.listener
      if (listener === undefined) return Effect.void
      return Effect.zipRight(
        pace,
        takeOne(listener, sockets.accept(listener)).pipe(
          Effect.tapError((error) => acceptFailed.began(error.message, { code: error.code })),
          Effect.retry(exhaustedPause), // for ever: the schedule never ends
          Effect.orDie,
          Effect.zipRight(acceptFailed.ended)
        )
      )
    }

    yield* event(
      "info",
      "accept_mode",
      `a process per connection: at most ${mode.maxConnections} at once, more wait in the backlog; ` +
        `${ServiceConfig.perSourceText(mode)}, more are refused; at most ${rate} started`,
      {
        max_connections: mode.maxConnections,
        max_connections_per_address: ServiceConfig.perSourceLimit(mode, "ip"),
        max_connections_per_uid: ServiceConfig.perSourceLimit(mode, "unix"),
        max_accept_rate: rate
      }
    )

    // The lane while nothing has failed; after a failure, connection by connection until a start succeeds.
    const next = Effect.suspend(() => {
      const to = lane
      if (to === undefined) return waitForConnection
      return Effect.flatMap(backoff.state, (state) => state.failures > 0 || state.gaveUp ? waitForConnection : laneNext(to))
    })

    return {
      next: () => next,
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
        const count = (yield* FiberSet.size(instances)) + laneInstances.size
        if (count === 0) return "not running"
        yield* Ref.set(service.stopReason, "on request (soad sleep)")
        yield* Effect.ensuring(stopAll, Ref.set(service.stopReason, undefined))
        return `stopped ${count} instance${count === 1 ? "" : "s"}`
      })
    } satisfies Shell.ModeHooks<AppLogs>
  })

/**
 * Serves a service in accept mode on listeners already open, forever. Interrupting it stops every running
 * instance gracefully (the shutdown signal, SIGKILL after the stop timeout, the group and cgroup killed).
 */
export const serve = (
  config: ServiceConfig.ServiceConfig,
  listeners: ReadonlyArray<Listener>,
  mode: ServiceConfig.Accept
): Effect.Effect<never, never, SocketService | ProcessService | Registry | Budget | AppLogs> =>
  Effect.flatMap(
    Effect.zip(SocketService, ProcessService),
    ([sockets, processes]) => Shell.serve(config, listeners, acceptMode(sockets, processes, mode))
  )
