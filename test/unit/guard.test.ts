/**
 * The guard's supervision (os/guard.ts) over fake guard processes under TestClock: a guard that dies is
 * logged and replaced at once, the new one is given every entry held (those added while it started included, none
 * removed), a close is not a death, and starts that fail or guards that die at once back off (100 ms doubling to
 * 30 s), to the millisecond.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Guard from "../../src/os/guard.js"
import { advance, captureEvents, settle, supervised } from "../../src/testing.js"

/** A fake guard process: the lines written to it, whether its stdin was closed; `die` ends it. */
interface FakeGuard extends Guard.Child {
  readonly lines: Array<string>
  readonly closed: () => boolean
  readonly die: (signal?: NodeJS.Signals) => Effect.Effect<void>
}

const fakeGuard = (pid: number): Effect.Effect<FakeGuard> =>
  Effect.map(Deferred.make<Guard.Exited>(), (exited) => {
    const lines: Array<string> = []
    let closed = false
    return {
      pid,
      lines,
      write: (line) => lines.push(line),
      close: () => (closed = true),
      closed: () => closed,
      exited: Deferred.await(exited),
      die: (signal = "SIGKILL") => Effect.asVoid(Deferred.succeed(exited, { code: null, signal }))
    }
  })

const setup = Effect.gen(function*() {
  const guards: Array<FakeGuard> = []
  /** The Clock time of each start, failed ones included. */
  const startedAt: Array<number> = []
  /** `failing`: how many starts fail from now on; `gate`: starts wait for it to be opened. */
  const plan: { failing: number; gate: Deferred.Deferred<void> | undefined } = { failing: 0, gate: undefined }
  const spawn: Guard.Spawner = Effect.gen(function*() {
    startedAt.push(yield* Clock.currentTimeMillis)
    if (plan.gate !== undefined) yield* Deferred.await(plan.gate)
    if (plan.failing > 0) {
      plan.failing--
      return yield* new Guard.GuardStartError({ code: "EAGAIN", message: "spawn soad-guard: Resource temporarily unavailable" })
    }
    const guard = yield* fakeGuard(100 + guards.length)
    guards.push(guard)
    return guard
  })
  const { events, layer } = captureEvents()
  const scope = yield* Scope.make()
  const guard = (yield* Guard.make(spawn).pipe(Scope.extend(scope)))!
  yield* guard.supervise.pipe(Effect.provide(layer), Effect.forkIn(scope), supervised)
  yield* settle
  const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
  return { guard, guards, startedAt, plan, named, scope }
})

describe("the guard's supervision", () => {
  it.scoped("a guard that dies is replaced at once; the new one gets every entry held, none removed", () =>
    Effect.gen(function*() {
      const { guard, guards, named } = yield* setup
      guard.add("/sys/fs/cgroup/soad.a")
      guard.add("4242")
      guard.add("/sys/fs/cgroup/soad.b")
      guard.remove("4242")
      expect(guards[0]!.lines).toEqual(["+/sys/fs/cgroup/soad.a", "+4242", "+/sys/fs/cgroup/soad.b", "-4242"])

      yield* guards[0]!.die("SIGKILL")
      yield* settle
      expect(named("guard_died")).toEqual([
        { guard_pid: 100, code: null, signal: "SIGKILL", uptime_ms: 0, entries: 2 }
      ])
      expect(guards).toHaveLength(2)
      expect(guards[1]!.lines).toEqual(["+/sys/fs/cgroup/soad.a", "+/sys/fs/cgroup/soad.b"])
      expect(named("guard_restarted")).toEqual([{ guard_pid: 101, previous_guard_pid: 100, entries: 2 }])
      expect(guard.pid).toBe(101)

      // From now on, only the new guard hears of changes.
      guard.add("77")
      guard.remove("/sys/fs/cgroup/soad.a")
      expect(guards[1]!.lines.slice(2)).toEqual(["+77", "-/sys/fs/cgroup/soad.a"])
      expect(guards[0]!.lines).toHaveLength(4)
    }))

  it.scoped("entries added or removed while the new guard starts reach it: it is sent the list as it is when it runs", () =>
    Effect.gen(function*() {
      const { guard, guards, plan } = yield* setup
      guard.add("/sys/fs/cgroup/soad.a")
      plan.gate = yield* Deferred.make<void>()
      yield* guards[0]!.die()
      yield* settle
      // The old guard is dead and the new one not running yet: these go nowhere but the list.
      guard.add("/sys/fs/cgroup/soad.b")
      guard.remove("/sys/fs/cgroup/soad.a")
      guard.add("5151")
      yield* Deferred.succeed(plan.gate, undefined)
      yield* settle
      expect(guards[1]!.lines).toEqual(["+/sys/fs/cgroup/soad.b", "+5151"])
    }))

  it.scoped("an entry added twice is held twice, as the guard holds it: one remove leaves it guarded", () =>
    Effect.gen(function*() {
      const { guard, guards } = yield* setup
      guard.add("/sys/fs/cgroup/soad.a")
      guard.add("/sys/fs/cgroup/soad.a")
      guard.remove("/sys/fs/cgroup/soad.a")
      guard.remove("/sys/fs/cgroup/soad.never-added")
      yield* guards[0]!.die()
      yield* settle
      expect(guards[1]!.lines).toEqual(["+/sys/fs/cgroup/soad.a"])
    }))

  it.scoped("closing the scope closes the guard's stdin; its exit then is no death: nothing is logged or restarted", () =>
    Effect.gen(function*() {
      const { guards, named, scope } = yield* setup
      yield* Scope.close(scope, Exit.void)
      expect(guards[0]!.closed()).toBe(true)
      yield* guards[0]!.die()
      yield* settle
      expect(guards).toHaveLength(1)
      expect(named("guard_died")).toEqual([])
    }))

  it.scoped("starts that fail are tried again after 100 ms, doubling, at most every 30 s, and each is said", () =>
    Effect.gen(function*() {
      const { guards, named, plan, startedAt } = yield* setup
      plan.failing = 12
      yield* advance("5 seconds")
      yield* guards[0]!.die()
      yield* advance("60 seconds")
      // The first try at once, then 100, 200, 400 ms … capped at 30 s.
      const gaps = startedAt.slice(1).map((at, i, all) => i === 0 ? at - 5000 : at - all[i - 1]!)
      expect(gaps).toEqual([0, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600])
      yield* advance("90 seconds")
      expect(startedAt.slice(11).map((at, i) => at - startedAt[10 + i]!)).toEqual([30_000, 30_000, 30_000])
      expect(named("guard_restart_failed")).toHaveLength(12)
      expect(named("guard_restart_failed")[0]).toEqual({ code: "EAGAIN", failures: 1 })
      expect(guards).toHaveLength(2)
      expect(named("guard_restarted")).toEqual([{ guard_pid: 101, previous_guard_pid: 100, entries: 0 }])
    }))

  it.scoped("a guard that dies within 10 s of its start is replaced after a pause that grows; one that ran 10 s at once", () =>
    Effect.gen(function*() {
      const { guards, startedAt } = yield* setup
      yield* advance("20 seconds")
      for (let i = 0; i < 4; i++) {
        yield* guards.at(-1)!.die()
        yield* advance("1 second")
      }
      // At once after the first guard (it ran 20 s), then 100, 200, 400 ms after each that died at once.
      expect(startedAt.slice(1)).toEqual([20_000, 21_100, 22_200, 23_400])
      yield* advance("10 seconds")
      yield* guards.at(-1)!.die()
      yield* settle
      expect(startedAt.at(-1)).toBe(34_000)
    }))
})
