/**
 * `--ready notify` in the lifecycle core, under TestClock with the fakes: the app gets a NOTIFY_SOCKET of the run's
 * own, counts as ready only once it sends READY=1 (even if it accepts at once), fails its start at --start-timeout
 * without it, EXTEND_TIMEOUT_USEC moves that deadline, and datagrams from processes not the app's are dropped,
 * counted, and said at most once a second, however many come.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Metrics from "../../src/observe/metrics.js"
import * as Activator from "../../src/Activator.js"
import * as Registry from "../../src/Registry.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { advance, captureEvents, settle, supervised, World } from "../../src/testing.js"

const setup = (fields: Partial<Omit<ServiceConfig.ServiceConfig, "command">> = {}) =>
  Effect.gen(function*() {
    const world = new World()
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.merge(world.layer, layer))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
      command: ["app"],
      ready: "notify",
      startTimeout: Duration.seconds(10),
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
    return { world, named, fd: listeners[0]!.fd }
  })

describe("--ready notify", () => {
  it.scoped("the app is ready only once it sends READY=1, though it accepted at once", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      expect(world.apps[0]!.request.env.NOTIFY_SOCKET).toMatch(/^@fake\//)
      yield* advance("5 seconds")
      expect(named("ready")).toEqual([])
      yield* world.notify("STATUS=warming up\nREADY=1")
      yield* settle
      expect(named("ready")).toHaveLength(1)
      expect(named("app_notify")).toContainEqual(expect.objectContaining({ app_status: "warming up" }))
      yield* advance("1 minute")
      expect(named("not_ready")).toEqual([])
    }))

  it.scoped("an app that never sends READY=1 is a failed start at --start-timeout", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      yield* advance("9999 millis")
      expect(named("not_ready")).toEqual([])
      expect(world.apps[0]!.running).toBe(true)
      yield* advance("1 millis")
      expect(named("not_ready")).toEqual([expect.objectContaining({ start_timeout_ms: 10_000 })])
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(named("ready")).toEqual([])
    }))

  it.scoped("EXTEND_TIMEOUT_USEC moves the start deadline to that long from now", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      yield* advance("5 seconds")
      yield* world.notify("EXTEND_TIMEOUT_USEC=20000000")
      yield* settle
      yield* advance("19999 millis") // 24.999 s after the start
      expect(named("not_ready")).toEqual([])
      expect(world.apps[0]!.running).toBe(true)
      yield* advance("1 millis")
      expect(named("not_ready")).toHaveLength(1)
    }))

  it.scoped("READY=1 from a process of another user outside the app's session is ignored", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      yield* world.notify("READY=1", 4242, 65534)
      yield* settle
      expect(named("ready")).toEqual([])
      expect(named("notify_ignored")).toEqual([expect.objectContaining({ from_pid: 4242, count: 1 })])
      yield* advance("10 seconds")
      expect(named("not_ready")).toHaveLength(1)
    }))

  it.scoped("a flood of strangers' datagrams: counted, said at most once a second with the count; the app's READY=1 still counts", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      const before = (yield* Metric.value(Metrics.forService(Metrics.notifyIgnored, "app"))).count
      // 3 seconds of 10 bursts a second of 100 datagrams from two strangers; the app says READY=1 among them.
      for (let tick = 0; tick < 30; tick++) {
        for (let i = 0; i < 100; i++) yield* world.notify("READY=1", i % 2 === 0 ? 4242 : 4343, 65534)
        if (tick === 15) yield* world.notify("READY=1")
        yield* advance("100 millis")
      }
      yield* advance("2 seconds")
      expect(named("ready")).toHaveLength(1)
      const said = named("notify_ignored")
      // One at once, then one a second at most: 3 s of flood, 4 lines at most, and their counts add up.
      expect(said.length).toBeGreaterThanOrEqual(2)
      expect(said.length).toBeLessThanOrEqual(4)
      expect(said.reduce((sum, fields) => sum + (fields.count as number), 0)).toBe(30 * 100)
      expect(said[0]).toMatchObject({ from_pid: 4242, from_uid: 65534 })
      expect(said.at(-1)).toMatchObject({ senders: 2 })
      const after = (yield* Metric.value(Metrics.forService(Metrics.notifyIgnored, "app"))).count
      expect(after - before).toBe(30 * 100)
    }))

  it.scoped("after a wake that brought a stranger's datagrams, the socket is read again only 20 ms later", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      yield* world.notify("READY=1", 4242, 65534)
      yield* settle
      yield* world.notify("READY=1")
      yield* settle
      expect(named("ready")).toEqual([])
      yield* advance("20 millis")
      expect(named("ready")).toHaveLength(1)
    }))

  it.scoped("READY=1 from a short-lived sender with the app's uid (systemd-notify) counts", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      yield* world.notify("READY=1", 4242)
      yield* settle
      expect(named("ready")).toHaveLength(1)
    }))

  it.scoped("accept mode gives no NOTIFY_SOCKET and is ready when the app accepts", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ ready: "accept" })
      yield* world.connect(fd)
      yield* settle
      expect(world.apps[0]!.request.env.NOTIFY_SOCKET).toBeUndefined()
      expect(named("ready")).toHaveLength(1)
    }))

  it.scoped("proxy mode relays the held connections only after READY=1, though the upstream already listens", () =>
    Effect.gen(function*() {
      const world = new World()
      const { events, layer } = captureEvents()
      const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
      const upstream = { host: "127.0.0.1", port: 8000 } as const
      const config = ServiceConfig.make({
        listeners: [{ name: "soad", address: { _tag: "Tcp", host: "0.0.0.0", port: 80 } }],
        command: ["app"],
        upstream: { _tag: "Tcp", ...upstream },
        ready: "notify",
        startTimeout: Duration.seconds(30)
      })
      const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
      yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
      yield* settle
      const held = yield* world.relay.connect()
      yield* settle
      world.relay.listening(upstream)
      yield* advance("2 seconds")
      expect(world.relay.held.map((conn) => conn.id)).toEqual([held.id])
      expect(events.filter((event) => event.name === "ready")).toEqual([])
      yield* world.notify("STATUS=serving\nREADY=1")
      yield* settle
      expect(world.relay.held).toEqual([])
      expect(world.relay.relayed.map((conn) => conn.id)).toEqual([held.id])
      const status = yield* Effect.provide(Registry.Registry, context).pipe(
        Effect.flatMap((registry) => registry.services),
        Effect.flatMap((services) => services[0]!.status)
      )
      expect(status.appStatus).toBe("serving")
    }))
})
