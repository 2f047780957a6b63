/**
 * Fake layers for the Activator's unit tests: the same SocketService, ProcessService and RelayService tags, with
 * sockets, processes and relayed connections that a test drives by hand. The ProcessService is the real one
 * (`ProcessService.make`) over a fake driver, so its stop logic is under test too.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Address from "../src/Address.js"
import type * as Relay from "../src/os/relay.js"
import type { Endpoint } from "../src/os/connections.js"
import { AppNotify, type AppNotifyApi, type NotifyMessage } from "../src/AppNotify.js"
import * as ProcessService from "../src/ProcessService.js"
import { type Conn, RelayService, type Target } from "../src/RelayService.js"
import type * as Signal from "../src/Signal.js"
import { AcceptError, type Connection, type Listener, ListenError, SocketService } from "../src/SocketService.js"

/** `--accept`: who a fake client is: a TCP peer's address, or a UNIX peer's uid. */
export interface Peer {
  readonly remote?: { readonly ip: string; readonly port: number } | undefined
  readonly uid?: number | undefined
}

/** What a fake app does when it gets a signal. */
export type OnSignal = "exit" | "ignore"

export interface FakeApp {
  readonly pid: number
  readonly request: ProcessService.SpawnRequest
  readonly signals: Array<string>
  running: boolean
  exit: (code: number | null, signal?: NodeJS.Signals | null) => void
}

/**
 * How long counting keeps a listener on its quiet signal after a connection (src/native/count.c, COUNT_REARM_MS;
 * helper/sentinel.c, REARM_MS): connections meanwhile only set a bit, and the moment it ends is their time.
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

/** The world the fakes share: listeners with backlogs, and apps. */
export class World {
  /** Connections waiting in each listener's backlog, by fd. */
  readonly backlog = new Map<number, number>()
  readonly apps: Array<FakeApp> = []
  readonly groupSignals: Array<{ readonly pid: number; readonly signal: string }> = []
  /** Thrown by the next spawns, if set (an Error with errno, as the native binding throws). */
  spawnError: Error | undefined = undefined
  /** How the next apps answer the shutdown signal. */
  onTerm: OnSignal = "exit"
  /** Does the running app accept connections at once? */
  accepting = true
  /** The next read of arrivals finds that the app had cleared O_ASYNC. */
  clearedAsync = false
  /** Accepted connections still open (long requests, WebSockets). */
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
  /** What the apps listen on by themselves, instead of taking their fds. */
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
  spawnAttempts = 0
  private nextFd = 10
  private nextPid = 1000
  private readableWaiters = new Set<() => void>()
  private watched = new Set<Watched>()

  get running(): FakeApp | undefined {
    return this.apps.find((app) => app.running)
  }

  /** `--accept`: the peers of the connections waiting in each backlog, in order (undefined: `remote` and `uid`). */
  private readonly peers = new Map<number, Array<Peer | undefined>>()

  /**
   * A client connects to the listener with this fd, now (Clock time); refused if the listener was shut down.
   * `peer`: who it is, for `--accept`.
   */
  connect(fd: number, peer?: Peer): Effect.Effect<void> {
    return Effect.map(Clock.currentTimeMillis, (now) => {
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

  /** The running apps accept everything that waits on their listeners. */
  acceptAll(): void {
    for (const fd of this.backlog.keys()) {
      if (this.apps.some((app) => app.running && app.request.fds.includes(fd))) {
        this.backlog.set(fd, 0)
        this.peers.delete(fd)
      }
    }
    this.changed()
  }

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

  constructor(public exactCounting = true) {}

  readonly sockets: SocketService["Type"] = ((world: World) => ({
    // read when used: field initializers run before the constructor sets exactCounting
    get exactCounting(): boolean {
      return world.exactCounting
    },
    open: (config: Address.ListenerConfig) =>
      Effect.sync((): Listener => {
        const fd = this.nextFd++
        this.backlog.set(fd, 0)
        return { name: config.name, address: config.address, fd, description: `fake:${fd}` }
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
          latest: Effect.map(Clock.currentTimeMillis, (now) => {
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

  /** Does the driver arm starts (the cold path, as on Linux)? Off: soad waits for the connection, then spawns. */
  armable = process.env.SOAD_FAKE_ARM !== "0"
  /** Starts armed now and not fired. */
  armed = 0
  /** Starts fired by a connection (the cold path). */
  coldStarts = 0
  /** Thrown by the next arms, if set (nothing armed: the command cannot be found, say). */
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

  /** The driver a ProcessService is made over: it arms starts (and accept's lane) if `armable` is set when it is taken. */
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
      const app: FakeApp = {
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
      this.apps.push(app)
      if (this.accepting) this.acceptAll()
      return pid
    },
    killGroup: (pid: number, signal: Signal.Signal) => {
      this.groupSignals.push({ pid, signal: signal.name })
      const app = this.apps.find((candidate) => candidate.pid === pid)
      if (app === undefined || !app.running) return
      app.signals.push(signal.name)
      if (signal.name === "SIGKILL") app.exit(null, "SIGKILL")
      else if (this.onTerm === "exit") {
        if (this.shutdownAtStop) app.request.fds.forEach((fd) => this.shutDown(fd))
        app.exit(0)
      }
    }
  }

  /** The relay of proxy mode: connections soad accepted, held or relayed. */
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
   * Sends a datagram to the running app's NOTIFY_SOCKET, from the app itself unless `pid` says otherwise (a pid not
   * an app's is a process gone by the time soad looks), as `uid` (default: the test's own, as the apps run).
   */
  notify(message: string, pid?: number, uid = process.getuid?.() ?? 0): Effect.Effect<void> {
    return Effect.suspend(() => {
      const app = this.running
      const path = app?.request.env.NOTIFY_SOCKET
      const queue = path === undefined ? undefined : this.notifySockets.get(path)
      if (app === undefined || queue === undefined) return Effect.dieMessage("no running app with a notify socket")
      return Queue.offer(queue, { message, pid: pid ?? app.pid, uid })
    })
  }

  /** Layers with this world's sockets, processes and relay. */
  readonly layer: Layer.Layer<SocketService | ProcessService.ProcessService | RelayService | AppNotify> = Layer.mergeAll(
    Layer.succeed(SocketService, this.sockets),
    Layer.succeed(AppNotify, this.appNotify),
    Layer.effect(ProcessService.ProcessService, ProcessService.make(this.driver)),
    Layer.succeed(RelayService, this.relay.service)
  )
}

/** A connection the fake relay accepted: where it went, and whether soad closed it. */
export interface FakeConn {
  readonly id: number
  /** Where it was relayed (undefined while held). */
  target: Target | undefined
  /** The order in which it was relayed (0, 1, …); undefined while held. */
  relayedAs: number | undefined
  closed: boolean
  /** The client went away. */
  gone: boolean
  /** What the client has sent so far (peeked by the waiting page), as text. */
  sent: string
  /** What soad answered it itself (the waiting page), as text; undefined if it did not. */
  answered: string | undefined
}

/** The fake world of proxy mode: clients connect, apps listen (or not) on their upstream address, bytes flow. */
export class RelayWorld {
  /** Looks at held connections' first bytes (the waiting page). */
  peeks = 0
  readonly conns: Array<FakeConn> = []
  /** The upstream addresses apps listen on now (by description); apps are up once theirs is here. */
  private readonly up = new Set<string>()
  /** Each hold(full) call, in order. */
  readonly holds: Array<boolean> = []
  /** The next relays fail (the app refuses), with this errno name. */
  refuse: string | undefined = undefined
  fdLimit: number | undefined = 1024
  private nextId = 1
  private relayedCount = 0
  private bytes = 0
  private last: number | undefined
  private onArrive: ((conn: Conn) => void) | undefined
  private onPressure: ((pressure: Relay.Pressure) => void) | undefined
  private upWaiters = new Set<() => void>()

  private key(target: Target): string {
    return "path" in target ? target.path : `${target.host}:${target.port}`
  }

  /** Connections being relayed now. */
  get relayed(): Array<FakeConn> {
    return this.conns.filter((conn) => conn.relayedAs !== undefined && !conn.closed).sort((a, b) => a.relayedAs! - b.relayedAs!)
  }

  /** Connections held: accepted, neither relayed, answered nor closed. */
  get held(): Array<FakeConn> {
    return this.conns.filter((conn) =>
      conn.relayedAs === undefined && conn.answered === undefined && !conn.closed && !this.backlog.includes(conn)
    )
  }

  /** Connections waiting in the backlog while soad holds as many as it may (hold(true)). */
  readonly backlog: Array<FakeConn> = []
  private full = false

  /**
   * A client connects, now, having sent `sent` (what soad may peek at; `conn.sent` can grow later): soad accepts it
   * at once, unless it holds as many as it may.
   */
  connect(sent = ""): Effect.Effect<FakeConn> {
    return Effect.map(Clock.currentTimeMillis, (now) => {
      const conn: FakeConn = {
        id: this.nextId++,
        target: undefined,
        relayedAs: undefined,
        closed: false,
        gone: false,
        sent,
        answered: undefined
      }
      this.conns.push(conn)
      if (this.full) this.backlog.push(conn)
      else this.accept(conn, now)
      return conn
    })
  }

  private accept(conn: FakeConn, now: number): void {
    this.last = now
    this.onArrive?.(conn.id)
  }

  /** Bytes pass on a relayed connection, now. */
  transfer(count: number): Effect.Effect<void> {
    return Effect.map(Clock.currentTimeMillis, (now) => {
      this.bytes += count
      this.last = now
    })
  }

  /** soad runs out of fds, or has them back. */
  pressure(pressure: Relay.Pressure): void {
    this.onPressure?.(pressure)
  }

  /** The app listens on `target` from now on (or stops listening). */
  listening(target: Target, up = true): void {
    if (up) this.up.add(this.key(target))
    else this.up.delete(this.key(target))
    for (const check of [...this.upWaiters]) check()
  }

  private find(conn: Conn): FakeConn {
    return this.conns.find((candidate) => candidate.id === conn)!
  }

  private readonly relayer: Relay.Relayer = {
    listen: (_fds, onArrive, onPressure) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          this.onArrive = onArrive
          this.onPressure = onPressure
        }),
        () =>
          Effect.sync(() => {
            this.onArrive = undefined
            this.onPressure = undefined
          })
      ),
    connect: (conn, target, onFail) => {
      const fake = this.find(conn)
      if (this.refuse !== undefined || !this.up.has(this.key(target))) {
        fake.closed = true
        return onFail({ syscall: "connect", code: this.refuse ?? "ECONNREFUSED" })
      }
      fake.target = target
      fake.relayedAs = this.relayedCount++
    },
    hold: (full) => {
      this.holds.push(full)
      this.full = full
      while (!this.full && this.backlog.length > 0) this.accept(this.backlog.shift()!, this.last ?? 0)
    },
    peek: (conn) => {
      this.peeks++
      const fake = this.find(conn)
      return fake.gone || fake.closed ? undefined : Buffer.from(fake.sent, "latin1")
    },
    answer: (conn, response) => void (this.find(conn).answered = Buffer.from(response).toString("utf8")),
    close: (conn) => void (this.find(conn).closed = true),
    closeRelayed: () => this.relayed.forEach((conn) => (conn.closed = true)),
    gone: (conn) => this.find(conn).gone,
    stats: Effect.sync(() => ({ open: this.relayed.length, bytesIn: this.bytes, bytesOut: 0, lastActivity: this.last }))
  }

  readonly service: RelayService["Type"] = {
    relayer: Effect.sync(() => this.relayer),
    fdLimit: Effect.sync(() => this.fdLimit),
    freePort: Effect.succeed(41000),
    awaitListening: (target) =>
      Effect.async<void>((resume) => {
        const check = () => {
          if (!this.up.has(this.key(target))) return
          this.upWaiters.delete(check)
          resume(Effect.void)
        }
        this.upWaiters.add(check)
        check()
        return Effect.sync(() => this.upWaiters.delete(check))
      })
  }
}

/** An Error as the native binding throws it. */
export const nativeError = (syscall: string, errno: number, message: string): Error =>
  Object.assign(new Error(`${syscall}: ${message}`), { errno, syscall })

/** A structured event as soad logs it (src/Logging.ts `event`): its name, level and fields, and the message. */
export interface LoggedEvent {
  readonly name: string
  readonly level: string
  readonly fields: Readonly<Record<string, unknown>>
  readonly message: string
}

/** Captures every event logged under the returned layer (the only logger), debug ones too, in order. */
export const captureEvents = (): { readonly events: Array<LoggedEvent>; readonly layer: Layer.Layer<never> } => {
  const events: Array<LoggedEvent> = []
  const layer = Layer.merge(Logger.minimumLogLevel(LogLevel.Debug), Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, logLevel, message }) => {
      const fields: Record<string, unknown> = {}
      for (const [key, value] of HashMap.toEntries(annotations)) if (key !== "event") fields[key] = value
      events.push({
        name: String(Option.getOrElse(HashMap.get(annotations, "event"), () => "")),
        level: logLevel.label,
        fields,
        message: Array.isArray(message) ? message.join(" ") : String(message)
      })
    })
  ))
  return { events, layer }
}
