/**
 * The fake RelayService of proxy mode: clients connect, apps listen (or not) on their upstream address, bytes flow,
 * all by hand and at Clock time. Part of `soad/testing`.
 *
 * @since 0.1.0
 */
import * as Monotonic from "../core/monotonic.js"
import * as Effect from "effect/Effect"
import type * as Relay from "../os/relay.js"
import type { Conn, RelayService, Target } from "../RelayService.js"

/** A connection the fake relay accepted: where it went, and whether soad closed it. */
export interface FakeConn {
  /** The connection's id (the `Conn` soad's relayer calls it by). */
  readonly id: number
  /** Where it was relayed (undefined while held). */
  target: Target | undefined
  /** The order in which it was relayed (0, 1, …); undefined while held. */
  relayedAs: number | undefined
  /** soad closed it (or the relay did, when the app refused it). */
  closed: boolean
  /** The client went away (set it by hand: soad sees it through `gone`, as the Node relayer does). */
  gone: boolean
  /** What the client has sent so far (peeked by the waiting page), as text; a test may append to it. */
  sent: string
  /** What soad answered it itself (the waiting page), as text; undefined if it did not. */
  answered: string | undefined
}

/**
 * The fake world of proxy mode: clients connect, apps listen (or not) on their upstream address, bytes flow.
 * `service` is the RelayService; a `World` holds one as `relay` and provides it in its `layer`.
 */
export class RelayWorld {
  /** How many times soad looked at held connections' first bytes (the waiting page). */
  peeks = 0
  /** Every connection a client made, in order. */
  readonly conns: Array<FakeConn> = []
  /** The upstream addresses apps listen on now (by description); apps are up once theirs is here. */
  private readonly up = new Set<string>()
  /** Each hold(full) call, in order (true: soad stopped accepting, as many are held as it may). */
  readonly holds: Array<boolean> = []
  /** The next relays fail (the app refuses), with this errno name (ECONNREFUSED, …), until cleared. */
  refuse: string | undefined = undefined
  /** soad's RLIMIT_NOFILE as `fdLimit` reports it (undefined: unlimited); the default --max-held is drawn from it. */
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

  /** Connections being relayed now, in the order they were relayed. */
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
   * A client connects, now (Clock time), having sent `sent` (what soad may peek at; `conn.sent` can grow later):
   * soad's relayer accepts it at once and hands it to soad (which relays or holds it), unless soad holds as many as
   * it may: then it waits in `backlog` until soad accepts again. Counts as activity at that time.
   */
  connect(sent = ""): Effect.Effect<FakeConn> {
    return Effect.map(Monotonic.now, (now) => {
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

  /** `count` bytes pass on a relayed connection, now (Clock time): activity, as the relayer's stats report it. */
  transfer(count: number): Effect.Effect<void> {
    return Effect.map(Monotonic.now, (now) => {
      this.bytes += count
      this.last = now
    })
  }

  /** soad runs out of fds (`Exhausted`), or has them back (`Recovered`): the relayer's `onPressure`, called now. */
  pressure(pressure: Relay.Pressure): void {
    this.onPressure?.(pressure)
  }

  /** The app listens on `target` from now on (or, with `up` false, stops listening): `awaitListening` completes. */
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

  /** The fake RelayService: its relayer is this world's; `awaitListening` completes once `listening` says so. */
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
