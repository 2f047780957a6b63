/**
 * An app shares its listeners with soad (its fd 3 is soad's socket) and may shut them down (shutdown(2) at its
 * graceful stop, as many C, C++ and Rust servers do): the listener then refuses every connection and reads as
 * readable forever, with nothing pending. soad brings it back before it waits again, says so once, and never takes
 * that readability for a connection; one it cannot bring back is said once, makes the service failing, and is tried
 * again with the backoff, with no start loop. Under TestClock against the fakes, on the cold path and (the same
 * tests again, "slow path") without it.
 */
import { expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Activator from "../../src/Activator.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { advance, captureEvents, settle, supervised, World } from "../../src/testing.js"
import { onBothPaths } from "./startPaths.js"

const setup = (fields: Partial<Omit<ServiceConfig.ServiceConfig, "command">> = {}) =>
  Effect.gen(function*() {
    const world = new World()
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.merge(world.layer, layer))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
      command: ["app"],
      idleTimeout: Duration.seconds(10),
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
    return { world, named, listeners, fd: listeners[0]!.fd }
  })

onBothPaths("a listener an app shut down", () => {
  it.scoped("at its stop: soad brings it back once, says so once, and starts nothing until a real connection", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ minUptime: Duration.zero })
      world.shutdownAtStop = true
      yield* world.connect(fd)
      yield* settle
      expect(world.apps).toHaveLength(1)
      yield* advance("10 seconds") // idle: stopped, and it shuts fd 3 down on its way out
      expect(world.apps[0]!.running).toBe(false)
      expect(world.down.has(fd)).toBe(false)
      expect(world.revivals).toEqual([{ fd, how: "reopened" }])
      expect(named("listener_revived")).toEqual([expect.objectContaining({ listener: "fake:" + fd, how: "reopened" })])
      // Ten quiet minutes: no start (the readability of a shut-down socket is no connection).
      yield* advance("10 minutes")
      expect(world.apps).toHaveLength(1)
      expect(world.spawnAttempts).toBe(1)
      // A client connects fine, and starts the app exactly once more.
      yield* world.connect(fd)
      yield* settle
      expect(world.refused).toBe(0)
      expect(world.apps).toHaveLength(2)
      expect(world.apps[1]!.running).toBe(true)
      yield* advance("10 seconds")
      expect(world.revivals).toHaveLength(2) // once per shutdown, said once each
      expect(named("listener_revived")).toHaveLength(2)
      expect(named("listener_dead")).toEqual([])
      expect(named("failing")).toEqual([])
    }))

  it.scoped("a TCP listener is listened on again (relisten)", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({
        listeners: [{ name: "soad", address: { _tag: "Tcp", host: "127.0.0.1", port: 8080 } }]
      })
      world.shutdownAtStop = true
      yield* world.connect(fd)
      yield* settle
      yield* advance("10 seconds")
      expect(named("listener_revived")).toEqual([expect.objectContaining({ how: "relisten" })])
      yield* advance("5 minutes")
      expect(world.apps).toHaveLength(1)
    }))

  it.scoped("while nothing runs (armed, or waited on): nothing starts, and it is brought back", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      world.shutDown(fd) // whoever else holds it (an inherited socket's launcher, a leftover process)
      yield* settle
      expect(world.apps).toHaveLength(0)
      expect(world.spawnAttempts).toBe(0)
      expect(world.coldStarts).toBe(0)
      expect(world.down.has(fd)).toBe(false)
      expect(named("listener_revived")).toHaveLength(1)
      if (world.armable) expect(world.armed).toBe(1) // armed again, on the socket that listens
      yield* world.connect(fd)
      yield* settle
      expect(world.apps).toHaveLength(1)
    }))

  it.scoped("one that cannot be brought back: said once, the service is failing, tried again with the backoff, no start loop", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ minUptime: Duration.zero })
      world.shutdownAtStop = true
      world.reviveError = "port 8080 was taken meanwhile"
      yield* world.connect(fd)
      yield* settle
      yield* advance("10 seconds")
      expect(named("listener_dead")).toEqual([expect.objectContaining({ listener: "fake:" + fd })])
      expect(named("failing")).toHaveLength(1)
      yield* advance("5 minutes")
      expect(world.apps).toHaveLength(1)
      expect(world.spawnAttempts).toBe(1)
      expect(named("listener_dead")).toHaveLength(1) // said once
      // tried again at each backoff step (0.5 s doubling to 60 s): a handful in 5 minutes, not a loop
      const retries = named("failing").length
      expect(retries).toBeGreaterThan(3)
      expect(retries).toBeLessThan(15)
      // It can be brought back again: it is at its next try, and then serves.
      world.reviveError = undefined
      yield* advance("60 seconds")
      expect(named("listener_revived")).toHaveLength(1)
      expect(world.down.has(fd)).toBe(false)
      yield* world.connect(fd)
      yield* settle
      expect(world.apps).toHaveLength(2)
    }))

  it.scoped("one of two cannot be brought back: the other still starts the app", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({
        minUptime: Duration.zero,
        listeners: [
          { name: "http", address: { _tag: "Unix", path: "/run/a.sock" } },
          { name: "admin", address: { _tag: "Unix", path: "/run/b.sock" } }
        ]
      })
      world.reviveError = "an inherited UNIX socket cannot be bound again"
      world.shutDown(fd)
      yield* settle
      expect(named("listener_dead")).toHaveLength(1)
      yield* world.connect(fd + 1)
      yield* advance("2 seconds") // the connection waits out the backoff of the failing service
      expect(world.apps).toHaveLength(1)
      expect(world.apps[0]!.request.fds).toEqual([fd, fd + 1])
      yield* advance("2 minutes")
      expect(world.apps).toHaveLength(1)
    }))
})
