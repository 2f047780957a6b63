/**
 * What bounds accept mode besides `--max-connections`, so that no client can stop soad from serving the others:
 * the source a connection comes from and the instances each source runs (`--max-connections-per-source`, as
 * systemd's MaxConnectionsPerSource=), the start rate (`--max-accept-rate`, a token bucket on the Clock), and a
 * report of what was refused, at most one line a second. Each per-client cost is bounded: a source is remembered
 * only while it has instances running (at most `--max-connections` sources). The permits and the bucket can be
 * taken without a fiber, as accept mode's lane does in its callbacks.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Monotonic from "../core/monotonic.js"
import type { Rate } from "../ServiceConfig.js"
import type { Peer } from "../ProcessService.js"

/** Where a connection comes from: its kind (an IP address, a UNIX peer), a key to count by, how the log names it. */
export interface Source {
  readonly kind: "ip" | "unix"
  readonly key: string
  readonly text: string
}

/** An IPv4 address written as IPv4-mapped IPv6 (`::ffff:192.0.2.1`). */
const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i

/**
 * The source of a connection, as systemd counts it: a TCP peer's IP address (an IPv4-mapped IPv6 address as the
 * IPv4 one: the same client on a dual-stack listener), a UNIX peer's uid; a UNIX peer whose uid could not be read
 * is one source with every other such peer.
 */
export const sourceOf = (connection: Peer): Source => {
  if (connection.remote !== undefined) {
    const ip = connection.remote.ip.replace(mapped, "$1").toLowerCase()
    return { kind: "ip", key: `ip ${ip}`, text: ip }
  }
  return connection.uid !== undefined
    ? { kind: "unix", key: `uid ${connection.uid}`, text: `uid ${connection.uid}` }
    : { kind: "unix", key: "unix", text: "a UNIX peer of unknown uid" }
}

/** Instances running per source; a source with none is forgotten. */
export class Sources {
  private readonly running = new Map<string, number>()
  /** Counts one more instance for the source, unless it has `limit` already (false: refuse it). */
  take(key: string, limit: number): boolean {
    const count = this.running.get(key) ?? 0
    if (count >= limit) return false
    this.running.set(key, count + 1)
    return true
  }
  /** One of the source's instances has ended (or never started). */
  release(key: string): void {
    const count = this.running.get(key) ?? 0
    if (count <= 1) this.running.delete(key)
    else this.running.set(key, count - 1)
  }
  /** Sources with instances running now. */
  get size(): number {
    return this.running.size
  }
}

/** What taking a token came to. */
export interface Taken {
  /** How long the taker waited for it (ms; 0: it was there). */
  readonly waited: number
  /** Every token was there: the bucket had refilled completely. */
  readonly full: boolean
}

/** A token bucket for starts: `take` waits on the Clock until a token is due; `refund` gives back the last one. */
export interface Bucket {
  readonly take: Effect.Effect<Taken>
  /** The token last taken started nothing (the connection was gone, or refused): it is there again. */
  readonly refund: Effect.Effect<void>
  /**
   * Waits until a token is there, and takes none: how long it waited (ms). Accept mode's lane gives a start once
   * one is there and takes it when a connection uses the start (`takeNow`): a token stays there as time passes.
   */
  readonly ready: Effect.Effect<number>
  /** Is a token there at `now` (Clock ms)? */
  readonly available: (now: number) => boolean
  /** Takes a token if one is there at `now`, without a fiber; undefined: none is. */
  readonly takeNow: (now: number) => Taken | undefined
}

/**
 * A bucket of `rate.count` tokens that gains one every `rate.per / rate.count`: bursts of up to `count` starts,
 * then one per interval. Kept as one number (GCRA's theoretical arrival time), so it costs nothing while idle and
 * needs no timer: a take computes when its token is due and sleeps until then. For one taker at a time.
 */
export const bucket = (rate: Rate): Effect.Effect<Bucket> =>
  Effect.sync(() => {
    const interval = Duration.toMillis(rate.per) / rate.count
    const tolerance = Duration.toMillis(rate.per) - interval
    let due = Number.NEGATIVE_INFINITY
    const take = Effect.gen(function*() {
      const now = yield* Monotonic.now
      const previous = due
      const at = Math.max(previous, now)
      due = at + interval
      const wait = at - tolerance - now
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      return { waited: Math.max(0, wait), full: previous <= now }
    })
    /** How long until a token is there at `now` (ms; 0 or less: it is). */
    const until = (now: number) => Math.max(due, now) - tolerance - now
    const ready = Effect.gen(function*() {
      const wait = until(yield* Monotonic.now)
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      return Math.max(0, wait)
    })
    const takeNow = (now: number): Taken | undefined => {
      if (until(now) > 0) return undefined
      const full = due <= now
      due = Math.max(due, now) + interval
      return { waited: 0, full }
    }
    return {
      take,
      refund: Effect.sync(() => {
        due -= interval
      }),
      ready,
      available: (now) => until(now) <= 0,
      takeNow
    }
  })

/**
 * The instances that may run at once (`--max-connections`), counted without a fiber, so that accept mode's lane
 * takes and gives them back in its callbacks; `free` and `take` wait for one in a fiber.
 */
export class Permits {
  private held = 0
  private readonly waiters = new Set<() => void>()
  constructor(readonly max: number) {}
  /** Takes one if one is free. */
  tryTake(): boolean {
    if (this.held >= this.max) return false
    this.held++
    return true
  }
  /** Gives one back: whoever waits for one may go on. */
  release(): void {
    this.held--
    for (const wake of [...this.waiters]) wake()
  }
  /** Waits until one is free (takes none). */
  readonly free: Effect.Effect<void> = Effect.async<void>((resume) => {
    const wake = () => {
      if (this.held >= this.max) return
      this.waiters.delete(wake)
      resume(Effect.void)
    }
    this.waiters.add(wake)
    wake()
    return Effect.sync(() => void this.waiters.delete(wake))
  })
  /** Takes one, waiting until one is free. */
  readonly take: Effect.Effect<void> = Effect.suspend(() => this.tryTake() ? Effect.void : Effect.zipRight(this.free, this.take))
}

/**
 * Says what happened `item` by `item`, at most once per `interval`: the first at once (`say(1, it)`), those that
 * follow within the interval together at its end (`say(count, latest)`), until an interval passes with none. The
 * waiting fiber lives in the scope.
 */
export const throttled = <A>(
  interval: Duration.Duration,
  say: (count: number, latest: A) => Effect.Effect<void>
): Effect.Effect<(item: A) => Effect.Effect<void>, never, Scope.Scope> =>
  Effect.map(Effect.scope, (scope) => {
    let pending = 0
    let latest: A | undefined
    let open = false
    const flush = Effect.gen(function*() {
      for (;;) {
        yield* Effect.sleep(interval)
        if (pending === 0) {
          open = false
          return
        }
        const count = pending
        pending = 0
        yield* say(count, latest!)
      }
    })
    return (item: A) =>
      Effect.suspend(() => {
        if (open) {
          pending++
          latest = item
          return Effect.void
        }
        open = true
        // Interruptible: a caller in an uninterruptible region (accept's takeOne) would otherwise hand that on to
        // the fiber, and closing the scope would wait out its sleep.
        return Effect.zipRight(say(1, item), Effect.asVoid(Effect.forkIn(Effect.interruptible(flush), scope)))
      })
  })
