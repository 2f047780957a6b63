/**
 * The fake OS of `soad/testing`: one `World` holds listeners with backlogs, apps, relayed connections and notify
 * sockets, and gives the SocketService, ProcessService, RelayService and AppNotify over them, with
 * `SoadContext.defaults` (`world.layer`). A test
 * drives it by hand (a client connects, an app exits, ignores SIGTERM, shuts its socket down) and reads what soad
 * did (the apps it started, the signals it sent). The ProcessService is the real one (`ProcessService.make`) over a
 * fake `Driver`, so its stop logic (the signal, the stop timeout, SIGKILL) runs under test to the millisecond.
 *
 * @since 0.1.0
 */
import * as Monotonic from "../core/monotonic.js"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Address from "../Address.js"
import { AppNotify, type AppNotifyApi, type NotifyMessage } from "../AppNotify.js"
import type { Endpoint } from "../os/connections.js"
import * as ProcessService from "../ProcessService.js"
import { RelayService } from "../RelayService.js"
import type * as Signal from "../Signal.js"
import * as SoadContext from "../SoadContext.js"
import { AcceptError, type Connection, type Listener, ListenError, SocketService } from "../SocketService.js"
import { RelayWorld } from "./relayWorld.js"

/** `--accept`: who a fake client is: a TCP peer's address, or a UNIX peer's uid. */
export interface Peer {
  readonly remote?: { readonly ip: string; readonly port: number } | undefined
  readonly uid?: number | undefined
}

/** What a fake app does when it gets its shutdown signal (SIGTERM, or the service's `stop-signal`). */
export type OnSignal = "exit" | "ignore"

/** An app soad started in the fake world (one per spawn, in order, in `World.apps`). */
export interface FakeApp {
  /** Its pid (1000, 1001, … in the order of the spawns). */
  readonly pid: number
  /** What soad asked to run: command, environment (`NOTIFY_SOCKET`, …), listener fds and names, user. */
  readonly request: ProcessService.SpawnRequest
  /** Every signal soad sent its process group, by name (`SIGTERM`, `SIGKILL`, …), in order, while it ran. */
  readonly signals: ReadonlyArray<string>
  /** It runs: spawned, and has not exited. */
  readonly running: boolean
  /**
   * The app exits now with this code, or killed by `signal` (code null): soad's ProcessService hears it as from the
   * live driver. Does nothing once it has exited.
   */
  readonly exit: (code: number | null, signal?: NodeJS.Signals | null) => void
}

/** How a `World` starts. */
export interface WorldOptions {
  /**
   * Every connection is counted (true, as on Linux), or only readability is seen (false: the fallback of other
   * platforms, where a connection the app accepts at once goes unseen). Default true.
   */
  readonly exactCounting?: boolean | undefined
  /**
   * The driver arms starts (true: the cold path of Linux, where a pending connection starts the app with no JS in
   * between), or soad waits for the connection and then spawns (false: other platforms, and `--ready notify`).
   * Default true, unless the environment says `SOAD_FAKE_ARM=0` (to run a whole suite again on the other path).
   */
  readonly armable?: boolean | undefined
}

/**
 * How long counting keeps a listener on its quiet signal after a connection (src/native/count.c, COUNT_REARM_MS;
 * helper/sentinel.c, REARM_MS): connections meanwhile only set a bit, and the moment it ends is their time. The
 * fake counts the same way, so an idle stop comes at most this much after `-t` past a burst's last connection.
 */
export const quietMillis = 100

/** Listeners watched for arrivals, as counting sees them. */
interface Watched {
  readonly fds: ReadonlySet<number>
  /** The latest arrival as counting says it. */
  at: number | undefined
  /** Since a connection's signal: on the quiet signal since `since`; `came`: a connection set its bit since. */
  quiet: { readonly since: number; came: boolean } | undefined
}

/** Ends a quiet spell that is over by `now`, as the timer does: its end is the latest arrival if a connection came. */
const settleQuiet = (entry: Watched, now: number): void => {
  if (entry.quiet === undefined || now < entry.quiet.since + quietMillis) return
  if (entry.quiet.came) entry.at = entry.quiet.since + quietMillis
  entry.quiet = undefined
}

/** A connection at `now`: signalled (its time is known, the quiet spell begins), or only the quiet bit. */
const arrive = (entry: Watched, now: number): void => {
  settleQuiet(entry, now)
  if (entry.quiet !== undefined) {
    entry.quiet.came = true
    return
  }
  entry.at = now
  entry.quiet = { since: now, came: false }
}

/** An app as the fake driver keeps it (FakeApp, writable here). */
interface AppState {
  readonly pid: number
  readonly request: ProcessService.SpawnRequest
  readonly signals: Array<string>
  running: boolean
  readonly exit: (code: number | null, signal?: NodeJS.Signals | null) => void
}

/**
 * The world the fakes share: listeners with backlogs, apps, relayed connections, notify sockets. Provide `layer` to
 * the code under test (the Activator, Services) and drive the world from the test; run the code `supervised` and
 * move time with `advance` (`soad/testing`'s clock helpers). Everything happens at Clock time and nothing waits on
 * a real timer, so the test's clock (`advance`) decides every moment.
 */
export class World {
  /** Every connection is counted (see `WorldOptions`); read by the SocketService when soad asks. */
  exactCounting: boolean
  /** Does the driver arm starts (see `WorldOptions`)? Read when `layer` (or `driver`) is taken. */
  armable: boolean

  constructor(options: WorldOptions = {}) {
    this.exactCounting = options.exactCounting ?? true
    this.armable = options.armable ?? process.env["SOAD_FAKE_ARM"] !== "0"
  }

  /** Connections waiting in each listener's backlog (not accepted by anyone), by fd; a test may set a count. */
  readonly backlog = new Map<number, number>()
  /** Every app soad started, in order, running or not. */
  get apps(): ReadonlyArray<FakeApp> {
    return this.appStates
  }
  private readonly appStates: Array<AppState> = []
  /** Every signal soad sent to a process group (running or gone), in order. */
  readonly groupSignals: Array<{ readonly pid: number; readonly signal: string }> = []
  /**
   * Thrown by the next spawns (and cold starts), while set: an Error with errno as the native binding throws it
   * (`nativeError("execve", 2, "No such file or directory")`); soad then reports a SpawnError with code ENOENT.
   */
  spawnError: Error | undefined = undefined
  /** How the next apps answer the shutdown signal: exit at once (code 0), or ignore it (soad then sends SIGKILL). */
  onTerm: OnSignal = "exit"
  /**
   * The running app accepts connections at once (true): a connection to its listener never waits in the backlog,
   * and soad sees it only by counting. false: connections pile up in `backlog` until `acceptAll`; a starting app
   * is ready only once it accepts (`awaitAccepting`).
   */
  accepting = true
  /** The next read of arrivals finds that the app had cleared O_ASYNC (soad set it again; arrivals may be missed). */
  clearedAsync = false
  /**
   * Accepted connections still open now (long requests, WebSockets), as soad sees them: while some are, an app is
   * not idle (unless `--idle-ignores-open-connections`), and a starting one is ready.
   */
  get open(): number {
    return this.openCount
  }
  set open(count: number) {
    this.openCount = count
    this.changed()
  }
  private openCount = 0
  /** Called back on every change a starting app's readiness depends on (the fake needs no polling). */
  private changeWaiters = new Set<() => void>()
  private changed(): void {
    for (const check of [...this.changeWaiters]) check()
  }
  /** Every listener soad opened, in order (their fds are what `connect` takes). */
  readonly listeners: Array<Listener> = []
  /** `--accept`: connections soad accepted whose fd it has not closed yet. */
  readonly acceptedOpen = new Set<number>()
  /** `--accept`: every connection soad accepted, in order. */
  readonly accepted: Array<Connection> = []
  /** `--accept`: the peer the next accepted connections have (undefined: a UNIX socket). */
  remote: { readonly ip: string; readonly port: number } | undefined = undefined
  /** `--accept`: the uid the next accepted UNIX connections' peer has (when `remote` is undefined). */
  uid: number | undefined = undefined
  /** `--accept`: the next accepts fail with this errno name (EMFILE), until cleared. */
  acceptError: string | undefined = undefined
  /** What the apps listen on by themselves, instead of taking their fds (soad warns: `ownListening`). */
  ownListening: ReadonlyArray<Endpoint> = []
  /**
   * Listeners (by fd) that were shut down (shutdown(2) by an app): they refuse connections and read as readable
   * forever (POLLHUP), with nothing pending, until soad revives them.
   */
  readonly down = new Set<number>()
  /** The apps shut their listeners down when they get the shutdown signal, before they exit (as many C servers do). */
  shutdownAtStop = false
  /** The next revivals fail with this message (the address was taken meanwhile, an inherited UNIX socket), until cleared. */
  reviveError: string | undefined = undefined
  /** Every listener soad brought back, in order. */
  readonly revivals: Array<{ readonly fd: number; readonly how: string }> = []
  /** Connections refused because their listener was shut down. */
  refused = 0
  /** How many spawns soad asked for (failed ones too). */
  spawnAttempts = 0
  private nextFd = 10
  private nextPid = 1000
  private readableWaiters = new Set<() => void>()
  private watched = new Set<Watched>()

  /** The app running now, if any (the first, in accept mode's many). */
  get running(): FakeApp | undefined {
    return this.apps.find((app) => app.running)
  }

  /** `--accept`: the peers of the connections waiting in each backlog, in order (undefined: `remote` and `uid`). */
  private readonly peers = new Map<number, Array<Peer | undefined>>()

  /**
   * A client connects to the listener with this fd (see `listeners`), now (Clock time). Counting sees it (activity
   * at this time, as the live count does, quiet spells included: `quietMillis`). If an app that `accepting` runs on
   * that listener, it takes the connection at once; else the connection waits in `backlog`, which wakes soad (it
   * starts the app) as a pending connection does. Refused (`refused`) if the listener was shut down. `peer`: who it
   * is, for `--accept`.
   */
  connect(fd: number, peer?: Peer): Effect.Effect<void> {
    return Effect.map(Monotonic.now, (now) => {
      if (this.down.has(fd)) {
        this.refused++
        return
      }
      for (const entry of this.watched) {
        if (entry.fds.has(fd)) arrive(entry, now)
      }
      const serving = this.apps.some((app) => app.running && app.request.fds.includes(fd))
      if (serving && this.accepting) return // accepted by the app at once
      this.backlog.set(fd, (this.backlog.get(fd) ?? 0) + 1)
      this.peers.set(fd, [...(this.peers.get(fd) ?? []), peer])
      for (const wake of [...this.readableWaiters]) wake()
      this.changed()
    })
  }

  /** The running apps accept everything that waits on their listeners (an app that was not `accepting` catches up). */
  acceptAll(): void {
    for (const fd of this.backlog.keys()) {
      if (this.apps.some((app) => app.running && app.request.fds.includes(fd))) {
        this.backlog.set(fd, 0)
        this.peers.delete(fd)
      }
    }
    this.changed()
  }

  /** Is a connection waiting on any of these fds (not on a listener that was shut down)? */
  pending(fds: ReadonlyArray<number>): boolean {
    return fds.some((fd) => (this.backlog.get(fd) ?? 0) > 0 && !this.down.has(fd))
  }

  /** An app (or anyone holding it) shuts the listener with this fd down: it wakes every wait on it, as POLLHUP does. */
  shutDown(fd: number): void {
    this.down.add(fd)
    for (const wake of [...this.readableWaiters]) wake()
    this.changed()
  }

  /** Readable, as poll sees it: a connection waits, or the listener was shut down. */
  private readable(fd: number): boolean {
    return (this.backlog.get(fd) ?? 0) > 0 || this.down.has(fd)
  }

  /** The fake SocketService over this world's listeners (the one in `layer`). */
  readonly sockets: SocketService["Type"] = ((world: World) => ({
    // read when used: a test may change it after the world is made
    get exactCounting(): boolean {
      return world.exactCounting
    },
    open: (config: Address.ListenerConfig) =>
      Effect.sync((): Listener => {
        const fd = this.nextFd++
        this.backlog.set(fd, 0)
        const listener = { name: config.name, address: config.address, fd, description: `fake:${fd}` }
        this.listeners.push(listener)
        return listener
      }),
    applyOptions: () => Effect.void,
    revive: (listener) =>
      Effect.suspend(() => {
        if (!this.down.has(listener.fd)) return Effect.succeed(undefined)
        if (this.reviveError !== undefined) {
          return Effect.fail(new ListenError({ address: listener.description, message: `${listener.description}: ${this.reviveError}` }))
        }
        this.down.delete(listener.fd)
        const how = listener.address._tag === "Tcp" ? "relisten" as const : "reopened" as const
        this.revivals.push({ fd: listener.fd, how })
        return Effect.succeed(how)
      }),
    awaitReadable: (listeners, wakeup) =>
      Effect.async<Listener | undefined>((resume) => {
        let unsubscribe: (() => void) | undefined
        const check = () => {
          const ready = listeners.find((listener) => this.readable(listener.fd))
          if (ready === undefined) return false
          this.readableWaiters.delete(check)
          unsubscribe?.()
          resume(Effect.succeed(ready))
          return true
        }
        if (check()) return
        this.readableWaiters.add(check)
        unsubscribe = wakeup?.subscribe(() => {
          this.readableWaiters.delete(check)
          resume(Effect.succeed(undefined))
        })
        return Effect.sync(() => {
          this.readableWaiters.delete(check)
          unsubscribe?.()
        })
      }),
    accept: (listener) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          if (this.acceptError !== undefined) {
            return Effect.fail(new AcceptError({ code: this.acceptError, message: `accept4: ${this.acceptError}` }))
          }
          const waiting = this.backlog.get(listener.fd) ?? 0
          if (waiting === 0) return Effect.succeed(undefined)
          this.backlog.set(listener.fd, waiting - 1)
          const peer = this.peers.get(listener.fd)?.shift() ?? { remote: this.remote, uid: this.remote === undefined ? this.uid : undefined }
          const connection: Connection = { fd: this.nextFd++, ...peer }
          this.accepted.push(connection)
          this.acceptedOpen.add(connection.fd)
          this.changed()
          return Effect.succeed(connection)
        }),
        (connection) => Effect.sync(() => connection !== undefined && this.acceptedOpen.delete(connection.fd))
      ),
    isPending: (listeners) => Effect.sync(() => this.pending(listeners.map((listener) => listener.fd))),
    awaitAccepting: (listeners) =>
      Effect.async<void>((resume) => {
        const check = () => {
          if (this.pending(listeners.map((listener) => listener.fd)) && this.openCount === 0) return
          this.changeWaiters.delete(check)
          resume(Effect.void)
        }
        this.changeWaiters.add(check)
        check()
        return Effect.sync(() => this.changeWaiters.delete(check))
      }),
    connectionAware: true,
    openConnections: () => Effect.sync(() => this.open),
    ownListening: () => Effect.sync(() => this.ownListening),
    arrivals: (listeners) =>
      Effect.gen(this, function*() {
        const entry: Watched = { fds: new Set(listeners.map((listener) => listener.fd)), at: undefined, quiet: undefined }
        yield* Effect.acquireRelease(
          Effect.sync(() => this.watched.add(entry)),
          () => Effect.sync(() => this.watched.delete(entry))
        )
        return {
          exact: true,
          latest: Effect.map(Monotonic.now, (now) => {
            settleQuiet(entry, now)
            if (entry.quiet !== undefined) {
              // a read switches the listeners back at once
              if (entry.quiet.came) entry.at = now
              entry.quiet = undefined
            }
            const read = { at: entry.at, rearmed: this.clearedAsync }
            this.clearedAsync = false
            return read
          })
        }
      })
  }))(this)

  /** Starts armed now and not fired (the cold path). */
  armed = 0
  /** Starts fired by a connection (the cold path). */
  coldStarts = 0
  /** Thrown by the next arms, while set (nothing armed: the command cannot be found, say); soad then spawns later. */
  armError: Error | undefined = undefined

  /** The cold path: a connection pending on one of the request's fds starts the app at once, as the native poll does. */
  private arm(
    request: ProcessService.SpawnRequest,
    onExit: (status: ProcessService.ExitStatus) => void,
    onStarted: (outcome: ProcessService.ArmOutcome) => void
  ): () => boolean {
    if (this.armError !== undefined) throw this.armError
    let done = false
    const fire = () => {
      const index = request.fds.findIndex((fd) => this.readable(fd))
      if (index < 0) return
      done = true
      this.armed--
      this.readableWaiters.delete(fire)
      // The native callback looks before it starts anything: a listener that was shut down is no connection.
      if (this.down.has(request.fds[index]!)) return onStarted({ _tag: "NotListening", index })
      this.coldStarts++
      try {
        const pid = this.baseDriver.spawn(request, onExit)
        onStarted({ _tag: "Started", index, pid, spawnMs: 0, wokeAtNs: process.hrtime.bigint() })
      } catch (error) {
        onStarted({ _tag: "Failed", error })
      }
    }
    this.armed++
    this.readableWaiters.add(fire)
    fire()
    return () => {
      if (done) return false
      done = true
      this.armed--
      this.readableWaiters.delete(fire)
      return true
    }
  }

  /** `--accept`: instances the lane started (the driver's own accept, as the native poll callback does it). */
  laneStarts = 0
  /** `--accept`: thrown by the lane's next starts given, if set (the instance's cgroup could not be made). */
  giveError: Error | undefined = undefined

  /**
   * `--accept`'s lane: while a start is given, a connection waiting on one of `listeners` is taken (as `accept`
   * takes one), admitted or closed, and its instance spawned; the outcome is said at once, as lane.c does.
   */
  private armAccept(
    listeners: ReadonlyArray<number>,
    request: ProcessService.SpawnRequest,
    events: ProcessService.DriverLaneEvents
  ): ProcessService.DriverLane {
    if (this.armError !== undefined) throw this.armError
    let given = false
    const stop = () => {
      given = false
      this.readableWaiters.delete(fire)
    }
    const fire = (): void => {
      while (given) {
        const index = listeners.findIndex((fd) => (this.backlog.get(fd) ?? 0) > 0)
        if (index < 0) return
        const fd = listeners[index]!
        if (this.acceptError !== undefined) {
          stop()
          return events.acceptFailed(index, Object.assign(new Error(`accept4: ${this.acceptError}`), { code: this.acceptError }))
        }
        this.backlog.set(fd, this.backlog.get(fd)! - 1)
        const peer = this.peers.get(fd)?.shift() ?? { remote: this.remote, uid: this.remote === undefined ? this.uid : undefined }
        const connection: Connection = { fd: this.nextFd++, ...peer }
        this.accepted.push(connection)
        this.acceptedOpen.add(connection.fd)
        this.changed()
        if (!events.admit(index, peer)) {
          this.acceptedOpen.delete(connection.fd)
          continue
        }
        stop()
        const remote = peer.remote === undefined ? {} : { REMOTE_ADDR: peer.remote.ip, REMOTE_PORT: String(peer.remote.port) }
        const instance = { ...request, env: { ...request.env, ...remote }, fds: [connection.fd], connection: connection.fd }
        let pid: number
        try {
          pid = this.baseDriver.spawn(instance, (status) => events.exit(pid, status))
        } catch (error) {
          return events.failed(error, connection.fd)
        }
        this.acceptedOpen.delete(connection.fd)
        this.laneStarts++
        events.started(pid)
      }
    }
    return {
      give: () => {
        if (this.giveError !== undefined) throw this.giveError
        given = true
        this.readableWaiters.add(fire)
        fire()
      },
      takeBack: () => {
        if (!given) return false
        stop()
        return true
      },
      disarm: stop,
      close: (fd) => void this.acceptedOpen.delete(fd)
    }
  }

  /**
   * The fake process Driver a ProcessService is made over (`ProcessService.make(world.driver)`): spawns are apps in
   * `apps`; a signal to a group is recorded, and the app answers it by `onTerm` (SIGKILL always ends it). It arms
   * starts if `armable` is set when it is taken.
   */
  get driver(): ProcessService.Driver {
    return this.armable
      ? {
        ...this.baseDriver,
        arm: (request, onExit, onStarted) => this.arm(request, onExit, onStarted),
        armAccept: (listeners, request, events) => this.armAccept(listeners, request, events)
      }
      : this.baseDriver
  }

  private readonly baseDriver: ProcessService.Driver = {
    spawn: (request, onExit) => {
      this.spawnAttempts++
      if (this.spawnError !== undefined) throw this.spawnError
      const pid = this.nextPid++
      const app: AppState = {
        pid,
        request,
        signals: [],
        running: true,
        exit: (code, signal = null) => {
          if (!app.running) return
          app.running = false
          onExit({ code, signal })
        }
      }
      this.appStates.push(app)
      if (this.accepting) this.acceptAll()
      return pid
    },
    killGroup: (pid: number, signal: Signal.Signal) => {
      this.groupSignals.push({ pid, signal: signal.name })
      const app = this.appStates.find((candidate) => candidate.pid === pid)
      if (app === undefined || !app.running) return
      app.signals.push(signal.name)
      if (signal.name === "SIGKILL") app.exit(null, "SIGKILL")
      else if (this.onTerm === "exit") {
        if (this.shutdownAtStop) app.request.fds.forEach((fd) => this.shutDown(fd))
        app.exit(0)
      }
    }
  }

  /** The relay of proxy mode: connections soad accepted, held or relayed (see `RelayWorld`). */
  readonly relay = new RelayWorld()

  /** The notify sockets runs opened (`--ready notify`), by path, while open. */
  readonly notifySockets = new Map<string, Queue.Queue<NotifyMessage>>()
  private nextNotify = 1

  /** Fake per-run notify sockets: a queue each; a sender is in the session of the app whose pid it is. */
  readonly appNotify: AppNotifyApi = {
    open: (service) =>
      Effect.acquireRelease(
        Effect.map(Queue.unbounded<NotifyMessage>(), (queue) => {
          const path = `@fake/${service}/${this.nextNotify++}`
          this.notifySockets.set(path, queue)
          return { path, queue }
        }),
        ({ path }) => Effect.sync(() => this.notifySockets.delete(path))
      ).pipe(Effect.map(({ path, queue }) => ({
        path,
        receive: Effect.flatMap(Queue.take(queue), (first) => Effect.map(Queue.takeAll(queue), (rest) => [first, ...rest]))
      }))),
    sessionOf: (pid) => Effect.succeed(this.apps.some((app) => app.pid === pid && app.running) ? pid : undefined)
  }

  /**
   * Sends a datagram to the running app's NOTIFY_SOCKET (`READY=1`, `STOPPING=1`, …), from the app itself unless
   * `pid` says otherwise (a pid not an app's is a process gone by the time soad looks), as `uid` (default: the
   * test's own, as the apps run). Dies if no app runs with a notify socket (`--ready notify`).
   */
  notify(message: string, pid?: number, uid = process.getuid?.() ?? 0): Effect.Effect<void> {
    return Effect.suspend(() => {
      const app = this.running
      const path = app?.request.env["NOTIFY_SOCKET"]
      const queue = path === undefined ? undefined : this.notifySockets.get(path)
      if (app === undefined || queue === undefined) return Effect.dieMessage("no running app with a notify socket")
      return Queue.offer(queue, { message, pid: pid ?? app.pid, uid })
    })
  }

  /**
   * The layers the code under test needs, over this world: SocketService, ProcessService (the real one over
   * `driver`, made anew at each build), RelayService, AppNotify, and `SoadContext.defaults` (a Registry, no
   * budget, no capture of the apps' output), as `SoadContext.layer` gives them with the live ones; a layer merged
   * after it replaces any of those. Take it after setting `armable`.
   */
  get layer(): Layer.Layer<SoadContext.SoadContext> {
    return Layer.mergeAll(
      Layer.succeed(SocketService, this.sockets),
      Layer.succeed(AppNotify, this.appNotify),
      Layer.effect(ProcessService.ProcessService, ProcessService.make(this.driver)),
      Layer.succeed(RelayService, this.relay.service),
      SoadContext.defaults
    )
  }
}
