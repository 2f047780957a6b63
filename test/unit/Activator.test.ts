import { expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as fc from "fast-check"
import * as Layer from "effect/Layer"
import * as Activator from "../../src/Activator.js"
import * as Registry from "../../src/Registry.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import * as Signal from "../../src/Signal.js"
import { advance, captureEvents, nativeError, settle, supervised, World } from "../../src/testing.js"
import { onBothPaths } from "./startPaths.js"


const setup = (fields: Partial<Omit<ServiceConfig.ServiceConfig, "command">> = {}, exactCounting = true) =>
  Effect.gen(function*() {
    const world = new World({ exactCounting })
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.merge(world.layer, layer))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
      command: ["app", "--port", "fd"],
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    const fiber = yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    /** The fields of each event of this name, in order. */
    const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
    return { world, events, named, listeners, fiber, fd: listeners[0]!.fd }
  })

onBothPaths("Activator", () => {
  it.scoped("starts the app on the first connection with the listeners and their names", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({
        listeners: [
          { name: "http", address: { _tag: "Unix", path: "/run/a.sock" } },
          { name: "admin", address: { _tag: "Tcp", host: "127.0.0.1", port: 9000 } }
        ]
      })
      expect(world.apps).toHaveLength(0)
      yield* world.connect(fd + 1) // the second listener
      yield* settle
      expect(world.apps).toHaveLength(1)
      expect(world.apps[0]!.request.command).toEqual(["app", "--port", "fd"])
      expect(world.apps[0]!.request.fds).toEqual([fd, fd + 1])
      expect(world.apps[0]!.request.fdNames).toEqual(["http", "admin"])
    }))

  it.scoped("stops the app exactly -t after the start when nothing else arrives", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("59999 millis")
      expect(world.apps[0]!.signals).toEqual([])
      expect(world.apps[0]!.running).toBe(true)
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(world.apps[0]!.running).toBe(false)
    }))

  it.scoped("each connection resets the idle time", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      for (let i = 0; i < 5; i++) {
        yield* advance("50 seconds")
        yield* world.connect(fd) // accepted by the app at once: only the count shows it
        yield* settle
      }
      expect(world.apps[0]!.running).toBe(true)
      yield* advance("59999 millis")
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(world.apps).toHaveLength(1)
    }))

  // Counting is quiet for 100 ms after a connection's signal (soad/testing's World models it): connections meanwhile are
  // seen together at its end. The stop is never earlier than -t after the last connection, and at most 100 ms
  // later; a lone connection's time is known exactly.
  it.scoped("a burst right before the deadline, the app accepting at once: the stop is -t after its last connection, at most 100 ms late", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("59950 millis")
      for (let i = 0; i < 5; i++) {
        yield* world.connect(fd) // at 59.95 s (signalled), then 59.96 .. 59.99 s (in the quiet spell)
        yield* advance("10 millis")
      }
      // the deadline look at 60 s finds the quiet spell with connections in it: activity now
      yield* advance("59989 millis") // 1 ms before 60 s after the last connection
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("101 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(world.apps).toHaveLength(1)
    }))

  it.scoped("connections on both sides of the deadline look, and lone ones: each stop exactly -t after the last", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("59950 millis")
      yield* world.connect(fd) // at 59.95 s: its spell is quiet till 60.05 s; the look at 60 s ends it (nothing came)
      yield* advance("70 millis")
      yield* world.connect(fd) // at 60.02 s, after the look: signalled, its time known
      yield* advance("59999 millis")
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
    }))

  it.scoped("whatever the timing of connections, the stop is never before -t after the last one, nor 100 ms after", () =>
    Effect.gen(function*() {
      // Seeded scenarios of gaps (ms) between connections: bursts, quiet spells, gaps around 100 ms and the deadline.
      const scenarios = fc.sample(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 80, max: 120 }), fc.integer({ min: 0, max: 59_999 })), {
          minLength: 1,
          maxLength: 12
        }),
        { numRuns: 10, seed: 7 }
      )
      for (const gaps of scenarios) {
        const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
        yield* world.connect(fd)
        yield* settle
        for (const gap of gaps) {
          yield* advance(Duration.millis(gap))
          yield* world.connect(fd)
        }
        expect(world.apps.length, `gaps ${gaps}`).toBe(1)
        yield* advance("59999 millis")
        expect(world.apps[0]!.signals, `gaps ${gaps}`).toEqual([])
        yield* advance("101 millis")
        expect(world.apps[0]!.signals, `gaps ${gaps}`).toEqual(["SIGTERM"])
      }
    }))

  it.scoped("uses the configured shutdown signal and escalates to SIGKILL exactly at the stop timeout", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({
        idleTimeout: Duration.seconds(10),
        stopTimeout: Duration.seconds(30),
        shutdownSignal: Signal.fromNumber(3)! // SIGQUIT
      })
      world.onTerm = "ignore"
      yield* world.connect(fd)
      yield* settle
      yield* advance("10 seconds")
      expect(world.apps[0]!.signals).toEqual(["SIGQUIT"])
      yield* advance("29999 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGQUIT"])
      expect(world.apps[0]!.running).toBe(true)
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGQUIT", "SIGKILL"])
      expect(world.apps[0]!.running).toBe(false)
    }))

  it.scoped("kills what the app left in its process group after it exits", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(10) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("10 seconds")
      const pid = world.apps[0]!.pid
      expect(world.groupSignals).toEqual([{ pid, signal: "SIGTERM" }, { pid, signal: "SIGKILL" }])
    }))

  it.scoped("an app that exits by itself re-arms the wait for the next connection", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("20 seconds")
      world.apps[0]!.exit(1)
      yield* settle
      expect(named("exited")).toEqual([expect.objectContaining({ code: 1, by_itself: true, uptime_ms: 20_000 })])
      yield* advance("10 minutes")
      expect(world.apps).toHaveLength(1) // nothing starts without a connection
      yield* world.connect(fd)
      yield* settle
      expect(world.apps).toHaveLength(2)
      expect(world.apps[1]!.running).toBe(true)
    }))

  it.scoped("a connection still pending when the app exits starts it again at once", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      yield* advance("10 seconds")
      world.accepting = false
      yield* world.connect(fd) // waits in the backlog
      world.apps[0]!.exit(0)
      yield* settle
      expect(world.apps).toHaveLength(2)
    }))

  it.scoped("does not stop the app while a connection waits in the backlog at the deadline", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("30 seconds")
      world.accepting = false
      yield* world.connect(fd)
      world.acceptAll() // counted and then still pending: simulate a pending one that the count missed
      world.backlog.set(fd, 1)
      yield* advance("60 seconds")
      expect(world.apps[0]!.signals).toEqual([])
      world.acceptAll()
      yield* advance("60 seconds")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
    }))

  it.scoped("interrupting the Activator stops the app gracefully and waits for it", () =>
    Effect.gen(function*() {
      const { fd, fiber, world } = yield* setup({ stopTimeout: Duration.seconds(30) })
      world.onTerm = "ignore"
      yield* world.connect(fd)
      yield* settle
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* settle
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(interrupting.unsafePoll()).toBeNull() // still waiting for the app
      yield* advance("30 seconds")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM", "SIGKILL"])
      yield* Fiber.join(interrupting)
      expect(world.apps[0]!.running).toBe(false)
    }))

  it.scoped("a command that cannot start is retried with backoff, never in a loop", () =>
    Effect.gen(function*() {
      const { events, fd, named, world } = yield* setup({ startLimitBurst: 0 }) // no start limit: retry for ever
      world.spawnError = nativeError("execve", 2, "No such file or directory")
      yield* world.connect(fd) // stays pending: no app accepts it
      yield* settle
      expect(world.spawnAttempts).toBe(1)
      expect(named("start_failed")).toEqual([expect.objectContaining({ code: "ENOENT" })])
      expect(events.find((event) => event.name === "start_failed")!.message).toContain("command not found: 'app'")
      yield* advance("399 millis") // the first delay is 0.5 s ± 20 %
      expect(world.spawnAttempts).toBe(1)
      yield* advance("9601 millis")
      // delays 0.5, 1, 2, 4 s (±20 %): retries near 0.5, 1.5, 3.5, 7.5 s; the next near 15.5 s
      expect(world.spawnAttempts).toBe(5)
      expect(named("failing").at(-1)).toMatchObject({ failures: 5 })
      world.spawnError = undefined
      yield* advance("20 seconds")
      expect(world.spawnAttempts).toBe(6)
      expect(world.apps).toHaveLength(1)
      expect(world.apps[0]!.running).toBe(true)
    }))

  it.scoped("a service's status is read at once while its app is stopped, the same as its effect says; not while it runs", () =>
    Effect.gen(function*() {
      const world = new World()
      const { layer } = captureEvents()
      const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
      const config = ServiceConfig.make({ listeners: ["/run/test.sock"], command: ["app"] })
      const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
      yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
      yield* settle
      const registry = Context.get(context, Registry.Registry)
      const service = (yield* registry.services)[0]!
      yield* advance("5 seconds")
      const at = 5_000
      expect(service.statusAt?.(at)).toEqual(yield* service.status)
      expect(service.statusAt?.(at)).toMatchObject({ state: "stopped", pid: undefined, activations: 0 })
      yield* world.connect(listeners[0]!.fd)
      yield* settle
      yield* advance("2 seconds")
      // Running: its latest activity is its run's, an effect; statusesOf reads it so.
      expect(service.statusAt?.(7_000)).toBeUndefined()
      const [running] = yield* Registry.statusesOf([service])
      expect(running).toEqual(yield* service.status)
      expect(running).toMatchObject({ state: "running", activations: 1, lastActivity: expect.any(Number) })
    }))

  it.scoped("the start limit: 5 failed starts within 10 s and the service is failed; what waits is refused at once until soad wake", () =>
    Effect.gen(function*() {
      const world = new World()
      const { events, layer } = captureEvents()
      const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
      const config = ServiceConfig.make({ listeners: ["/run/test.sock"], command: ["app"] })
      const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
      yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
      yield* settle
      const fd = listeners[0]!.fd
      const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
      const registry = Context.get(context, Registry.Registry)
      const status = Effect.flatMap(registry.services, (all) => all[0]!.status)
      world.spawnError = nativeError("execve", 2, "No such file or directory")
      yield* world.connect(fd)
      yield* settle
      yield* advance("9 seconds") // failures near 0, 0.5, 1.5, 3.5 and 7.5 s: the fifth is within 10 s
      expect(world.spawnAttempts).toBe(5)
      expect(named("failed")).toEqual([expect.objectContaining({ failures: 5 })])
      expect(yield* status).toMatchObject({ state: "failed", failedStarts: 5, lastError: { message: expect.stringContaining("command not found") } })
      // What waits is refused at once (not held for a backoff), and so is each new connection; nothing starts.
      expect(world.backlog.get(fd)).toBe(0)
      for (let i = 0; i < 3; i++) {
        yield* world.connect(fd)
        yield* settle
        expect(world.backlog.get(fd)).toBe(0)
      }
      yield* advance("1 hour")
      expect(world.spawnAttempts).toBe(5)
      expect(named("refused").length).toBeGreaterThanOrEqual(3)
      // soad wake starts it over: it is tried at once, and serves.
      world.spawnError = undefined
      const woken = yield* Effect.flatMap(registry.services, (all) => all[0]!.wake)
      expect(woken).toBe("failed; trying again, as asked")
      yield* settle
      expect(world.spawnAttempts).toBe(6)
      expect(world.running).toBeDefined()
      expect((yield* status).state).toBe("running")
    }))

  it.scoped("failed starts spread wider than the start limit's interval keep retrying, with backoff", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ maxBackoff: Duration.seconds(4), startLimitInterval: Duration.seconds(5) })
      world.spawnError = nativeError("execve", 2, "No such file or directory")
      yield* world.connect(fd)
      yield* settle
      yield* advance("60 seconds") // a failure every 4 s or so: never 5 within 5 s
      expect(world.spawnAttempts).toBeGreaterThan(10)
      expect(named("failed")).toEqual([])
    }))

  it.scoped("an app that crashes at start is restarted only after the backoff, and a good run resets it", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ minUptime: Duration.seconds(5), maxBackoff: Duration.seconds(2) })
      world.accepting = false
      yield* world.connect(fd)
      yield* settle
      const starts: Array<number> = []
      for (let i = 0; i < 6; i++) {
        const app = world.running!
        starts.push(world.apps.length)
        app.exit(1) // crashes at once; the connection stays pending
        yield* advance("100 millis")
        expect(world.apps).toHaveLength(starts.at(-1)!) // not restarted within the backoff
        yield* advance("2500 millis") // the delay is capped at 2 s (± jitter, capped after)
        expect(world.apps).toHaveLength(starts.at(-1)! + 1)
      }
      // A run past min-uptime resets the backoff: the next crash waits only the first delay again.
      yield* advance("10 seconds")
      world.running!.exit(0)
      yield* advance("1 millis")
      expect(world.apps).toHaveLength(8)
    }))

  it.scoped("if the app cleared O_ASYNC, counting is restored and the app gets another idle period", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      world.clearedAsync = true
      yield* advance("60 seconds")
      expect(world.apps[0]!.signals).toEqual([])
      expect(named("counting_restored")).toHaveLength(1)
      yield* advance("60 seconds")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
    }))

  it.scoped("says at start when connections can only be seen through readability", () =>
    Effect.gen(function*() {
      const { named } = yield* setup({}, false)
      expect(named("fallback")).toEqual([{ missing: "exact_counting" }])
      const exact = yield* setup({}, true)
      expect(exact.named("fallback")).toEqual([])
    }))

  it.scoped("activity on any of several listeners keeps the app running", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({
        idleTimeout: Duration.seconds(60),
        listeners: [
          { name: "http", address: { _tag: "Unix", path: "/run/a.sock" } },
          { name: "admin", address: { _tag: "Unix", path: "/run/b.sock" } }
        ]
      })
      yield* world.connect(fd)
      yield* settle
      for (let i = 0; i < 3; i++) {
        yield* advance("45 seconds")
        yield* world.connect(fd + 1) // only the second listener is used from now on
      }
      yield* advance("59999 millis")
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
    }))

  it.scoped("an accepted connection still open at the deadline keeps the app until it closes", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      world.open = 1 // a long request, or a WebSocket
      yield* advance("5 minutes")
      expect(world.apps[0]!.signals).toEqual([])
      expect(named("open_connections")).toEqual([expect.objectContaining({ open: 1, idle_ms: 60_000 })]) // said once
      world.open = 0
      yield* advance("999 millis")
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("1 millis") // looked at again every second once the idle time has passed
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
    }))

  it.scoped("with --idle-ignores-open-connections, open connections do not keep the app", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60), idleIgnoresOpenConnections: true })
      yield* world.connect(fd)
      yield* settle
      world.open = 3
      yield* advance("60 seconds")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
    }))

  it.scoped("an app that does not accept the connection within the start timeout is stopped, a failed start", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ startTimeout: Duration.seconds(10), idleTimeout: Duration.seconds(5) })
      world.accepting = false // the app hangs before accepting
      yield* world.connect(fd)
      yield* settle
      yield* advance("9999 millis")
      expect(world.apps[0]!.signals).toEqual([]) // the idle time (5 s) does not apply before it accepts
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(named("not_ready")).toEqual([expect.objectContaining({ pid: world.apps[0]!.pid, start_timeout_ms: 10_000 })])
      expect(named("failing")).toEqual([expect.objectContaining({ failures: 1 })])
      // the connection still waits: the next try comes after the backoff, not at once
      expect(world.apps).toHaveLength(1)
      world.accepting = true
      yield* advance("1 second")
      expect(world.apps).toHaveLength(2)
      expect(world.apps[1]!.running).toBe(true)
    }))

  it.scoped("an app that listens on its own address instead of taking fd 3 gets a hint once its start fails", () =>
    Effect.gen(function*() {
      const { events, fd, named, world } = yield* setup({ startTimeout: Duration.seconds(10) })
      world.accepting = false
      world.ownListening = [{ family: "ipv4", ip: "127.0.0.1", port: 8000 }]
      yield* world.connect(fd)
      yield* settle
      yield* advance("10 seconds")
      expect(named("hint")).toEqual([
        expect.objectContaining({ pid: world.apps[0]!.pid, listens_on: "127.0.0.1:8000", upstream: "127.0.0.1:8000" })
      ])
      // after the not_ready and failing events: the last word on this start
      const order = events.map((event) => event.name)
      expect(order.indexOf("hint")).toBeGreaterThan(order.indexOf("failing"))
      expect(order.indexOf("failing")).toBeGreaterThan(order.indexOf("not_ready"))
    }))

  it.scoped("no hint for an app that takes fd 3, or one that listens on nothing of its own", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ startTimeout: Duration.seconds(10), idleTimeout: Duration.seconds(5) })
      world.ownListening = [{ family: "ipv4", ip: "127.0.0.1", port: 8000 }] // e.g. an admin port besides fd 3
      yield* world.connect(fd)
      yield* settle
      yield* advance("5 seconds") // accepted at once, then idle: a good run
      expect(world.apps[0]!.running).toBe(false)
      world.ownListening = []
      world.accepting = false
      yield* world.connect(fd)
      yield* settle
      yield* advance("10 seconds")
      expect(named("not_ready")).toHaveLength(1)
      expect(named("hint")).toEqual([])
    }))

  it.scoped("a connection that arrives in the last moment before the stop keeps the app (race check)", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("59999 millis")
      yield* world.connect(fd) // 1 ms before the deadline
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("59999 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
    }))
})
