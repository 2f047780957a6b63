/**
 * Proxy mode on fake layers under TestClock: the held connections, the idle stop after the last relayed byte,
 * failed starts and --max-held, asserted through the structured events soad logs.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createRequire } from "node:module"
import * as Activator from "../../src/Activator.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import * as Registry from "../../src/Registry.js"
import { advance, captureEvents, nativeError, settle, supervised, World } from "../../src/testing.js"

const upstream = { host: "127.0.0.1", port: 8000 } as const

const setup = (fields: Partial<ServiceConfig.Fields> = {}) =>
  Effect.gen(function*() {
    const world = new World()
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Tcp", host: "0.0.0.0", port: 80 } }],
      command: ["app"],
      upstream: { _tag: "Tcp", ...upstream },
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const named = (name: string) => events.filter((event) => event.name === name)
    const handle = (yield* Effect.provide(Registry.Registry, context).pipe(Effect.flatMap((registry) => registry.services)))[0]!
    return { world, relay: world.relay, events, named, handle }
  })

describe("Proxy", () => {
  it.scoped("holds the connections while the app starts and relays them in arrival order once it listens", () =>
    Effect.gen(function*() {
      const { named, relay, world } = yield* setup({ startTimeout: Duration.seconds(30) })
      const first = yield* relay.connect()
      yield* settle
      expect(world.apps).toHaveLength(1)
      expect(world.apps[0]!.request.fds).toEqual([]) // the app binds its own address
      expect(world.apps[0]!.request.env.SOAD_UPSTREAM).toBe("127.0.0.1:8000")
      expect(named("started")[0]!.fields).toMatchObject({ pid: world.apps[0]!.pid, trigger: "connection", upstream: "127.0.0.1:8000" })
      yield* advance("2 seconds")
      const more = [yield* relay.connect(), yield* relay.connect()]
      yield* advance("3 seconds")
      expect(relay.held.map((conn) => conn.id)).toEqual([first.id, ...more.map((conn) => conn.id)])
      expect(named("ready")).toHaveLength(0)
      relay.listening(upstream)
      yield* settle
      expect(relay.held).toEqual([])
      expect(relay.relayed.map((conn) => conn.id)).toEqual([first.id, ...more.map((conn) => conn.id)])
      expect(named("ready")[0]!.fields).toMatchObject({ pid: world.apps[0]!.pid })
      const later = yield* relay.connect() // the app is up: relayed at once
      expect(relay.relayed.at(-1)!.id).toBe(later.id)
      expect(world.apps).toHaveLength(1)
    }))

  it.scoped("stops the app exactly -t after the last relayed byte, then starts it again for the next connection", () =>
    Effect.gen(function*() {
      const { named, relay, world } = yield* setup({ idleTimeout: Duration.seconds(60) })
      relay.listening(upstream)
      yield* relay.connect()
      yield* settle
      expect(relay.relayed).toHaveLength(1)
      yield* advance("50 seconds")
      yield* relay.transfer(100) // bytes either way are activity; the open connection itself is not
      yield* advance("59999 millis")
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(named("stopping")[0]!.fields).toMatchObject({ reason: "idle", idle_ms: 60_000 })
      expect(named("exited")[0]!.fields).toMatchObject({ by_itself: false, uptime_ms: 110_000 })
      expect(relay.relayed).toEqual([]) // the relays left are closed once the app has exited
      yield* relay.connect()
      yield* settle
      expect(world.apps).toHaveLength(2)
    }))

  it.scoped("a start that fails closes the held connections and backs off before the next try", () =>
    Effect.gen(function*() {
      const { named, relay, world } = yield* setup()
      world.spawnError = nativeError("execve", 2, "No such file or directory")
      const held = yield* relay.connect()
      yield* settle
      expect(world.spawnAttempts).toBe(1)
      expect(held.closed).toBe(true)
      expect(named("start_failed")[0]!.fields).toMatchObject({ code: "ENOENT" })
      expect(named("dropped")[0]!.fields).toMatchObject({ connections: 1 })
      expect(named("failing")[0]!.fields).toMatchObject({ failures: 1 })
      const nextTry = named("failing")[0]!.fields.next_try_ms as number
      world.spawnError = undefined
      yield* relay.connect() // within the backoff: held, no start yet
      yield* advance(Duration.millis(nextTry - 1))
      expect(world.spawnAttempts).toBe(1)
      expect(relay.held).toHaveLength(1)
      yield* advance("1 millis")
      expect(world.spawnAttempts).toBe(2)
      expect(world.apps[0]!.running).toBe(true)
    }))

  it.scoped("an app that never listens is stopped at the start timeout; its held connections are closed", () =>
    Effect.gen(function*() {
      const { named, relay, world } = yield* setup({ startTimeout: Duration.seconds(10) })
      const held = [yield* relay.connect(), yield* relay.connect()]
      yield* settle
      yield* advance("9999 millis")
      expect(world.apps[0]!.signals).toEqual([])
      yield* advance("1 millis")
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(named("not_ready")[0]!.fields).toMatchObject({ start_timeout_ms: 10_000 })
      expect(named("dropped")[0]!.fields).toMatchObject({ connections: 2 })
      expect(named("failing")[0]!.fields).toMatchObject({ failures: 1 })
      expect(held.every((conn) => conn.closed)).toBe(true)
      expect(world.apps).toHaveLength(1) // nothing waits now: no new start
    }))

  it.scoped("holds at most --max-held connections; more wait in the backlog and go in order once the app is up", () =>
    Effect.gen(function*() {
      const { named, relay } = yield* setup({ maxHeld: 2 })
      const conns = [yield* relay.connect(), yield* relay.connect(), yield* relay.connect()]
      yield* settle
      expect(relay.held.map((conn) => conn.id)).toEqual([conns[0]!.id, conns[1]!.id])
      expect(relay.backlog.map((conn) => conn.id)).toEqual([conns[2]!.id])
      expect(relay.holds).toEqual([true])
      expect(named("held_full")[0]!.fields).toMatchObject({ max_held: 2 })
      relay.listening(upstream)
      yield* settle
      expect(relay.holds).toEqual([true, false])
      expect(relay.relayed.map((conn) => conn.id)).toEqual(conns.map((conn) => conn.id))
    }))

  it.scoped("soad wake starts the app with no connection; soad sleep stops it; status counts what was relayed", () =>
    Effect.gen(function*() {
      const { handle, named, relay, world } = yield* setup()
      expect(yield* handle.wake).toBe("starting")
      yield* settle
      expect(world.apps).toHaveLength(1)
      expect(named("started")[0]!.fields).toMatchObject({ trigger: "wake" })
      expect((yield* handle.status).state).toBe("starting")
      relay.listening(upstream)
      yield* settle
      expect((yield* handle.status).state).toBe("running")
      yield* relay.connect()
      yield* relay.transfer(42)
      expect(yield* handle.status).toMatchObject({ openConnections: 1, relayedBytes: { in: 42, out: 0 } })
      expect(yield* handle.sleep).toBe("stopped")
      expect(named("stopping")[0]!.fields).toMatchObject({ reason: "requested" })
      expect((yield* handle.status).state).toBe("stopped")
      expect(relay.relayed).toEqual([])
    }))

  it("runs on the fakes alone: the native binding is never loaded", () => {
    // this file runs first in its fork (test/vitest.config.ts's sequencer), so anything loaded is from its tests
    const addons = Object.keys(createRequire(import.meta.url).cache).filter((path) => path.endsWith(".node"))
    expect(addons).toEqual([])
  })
})
