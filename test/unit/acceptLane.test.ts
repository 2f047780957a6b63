/**
 * `--accept`'s lane (ProcessService.acceptLane): connections taken and instances started in the driver's own
 * callback while a start is given, each booked in the mode's callbacks (no fiber per connection). Against the fakes
 * (whose driver takes connections as lane.c does) under TestClock: the lane serves while nothing fails, the serve
 * loop takes over after a failure until a start succeeds, a connection is never lost on the way, and a stop or
 * shutdown stops the lane's instances and the serve loop's together.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Activator from "../../src/Activator.js"
import * as Registry from "../../src/Registry.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { advance, captureEvents, nativeError, settle, supervised, World } from "../../src/testing.js"

const setup = (fields: Partial<ServiceConfig.Fields> = {}, before: (world: World) => void = () => {}) =>
  Effect.gen(function*() {
    const world = new World()
    world.armable = true
    before(world)
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
      command: ["handler"],
      accept: true,
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    const fiber = yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const handle = (yield* Effect.provide(Registry.Registry, context).pipe(Effect.flatMap((registry) => registry.services)))[0]!
    const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
    const running = () => world.apps.filter((app) => app.running)
    return { world, named, handle, fiber, fd: listeners[0]!.fd, running }
  })

describe("accept mode's lane", () => {
  it.scoped("connections are taken by the lane, each instance booked: counted, said, its exit with its uptime", () =>
    Effect.gen(function*() {
      const { fd, handle, named, running, world } = yield* setup()
      world.remote = { ip: "192.0.2.5", port: 7 }
      for (let i = 0; i < 3; i++) yield* world.connect(fd)
      yield* settle
      expect(world.laneStarts).toBe(3)
      expect(running()).toHaveLength(3)
      expect(world.acceptedOpen.size).toBe(0) // each instance has its connection; soad's copies are closed
      expect(running().map((app) => app.request.env.REMOTE_ADDR)).toEqual(["192.0.2.5", "192.0.2.5", "192.0.2.5"])
      expect(named("instance_started").map((fields) => fields.running)).toEqual([1, 2, 3])
      expect(named("instance_started")[0]).toMatchObject({ pid: running()[0]!.pid, remote_addr: "192.0.2.5", remote_port: 7, source: "192.0.2.5" })
      yield* advance("2500 millis")
      running()[0]!.exit(0)
      running()[0]!.exit(5)
      yield* settle
      expect(named("instance_exited")).toEqual([
        expect.objectContaining({ code: 0, uptime_ms: 2500 }),
        expect.objectContaining({ code: 5, uptime_ms: 2500 })
      ])
      expect(yield* handle.status).toMatchObject({ state: "running", instances: 1, activations: 3, crashes: 1 })
    }))

  it.scoped("--max-connections 2: the instance that ends gives the lane its next start, and the waiting connection is taken", () =>
    Effect.gen(function*() {
      const { fd, running, world } = yield* setup({ maxConnections: 2 })
      for (let i = 0; i < 3; i++) yield* world.connect(fd)
      yield* settle
      expect(world.accepted).toHaveLength(2)
      expect(world.backlog.get(fd)).toBe(1)
      running()[1]!.exit(0)
      yield* settle
      expect(world.accepted).toHaveLength(3)
      expect(world.laneStarts).toBe(3)
      expect(running()).toHaveLength(2)
    }))

  it.scoped("a failed start: said, the backoff moves; the serve loop takes the next after it, and the lane serves again after a success", () =>
    Effect.gen(function*() {
      const { fd, named, running, world } = yield* setup({ initialBackoff: Duration.seconds(1), maxBackoff: Duration.seconds(1) })
      world.spawnError = nativeError("execve", 13, "Permission denied")
      yield* world.connect(fd)
      yield* world.connect(fd)
      yield* settle
      expect(named("start_failed")).toEqual([expect.objectContaining({ code: "EACCES", failures: 1 })])
      expect(world.accepted).toHaveLength(1)
      expect(world.acceptedOpen.size).toBe(0) // closed: its instance could not start
      expect(world.backlog.get(fd)).toBe(1)
      world.spawnError = undefined
      yield* advance("2 seconds")
      expect(running()).toHaveLength(1)
      expect(world.laneStarts).toBe(0) // the serve loop's start, after the backoff
      yield* world.connect(fd)
      yield* settle
      expect(running()).toHaveLength(2)
      expect(world.laneStarts).toBe(1)
    }))

  it.scoped("a start that cannot be given (its cgroup cannot be made) is a failed start; the connection waits for the serve loop", () =>
    Effect.gen(function*() {
      const { fd, named, running, world } = yield* setup({ initialBackoff: Duration.seconds(1), maxBackoff: Duration.seconds(1) }, (w) => {
        w.giveError = nativeError("mkdir", 28, "No space left on device")
      })
      expect(named("start_failed")).toEqual([expect.objectContaining({ code: "ENOSPC", failures: 1 })])
      yield* world.connect(fd)
      yield* settle
      expect(world.accepted).toHaveLength(0)
      yield* advance("2 seconds")
      expect(running()).toHaveLength(1)
      expect(world.accepted).toHaveLength(1)
      expect(world.laneStarts).toBe(0)
    }))

  it.scoped("not armed (the driver refused the lane): the serve loop serves every connection", () =>
    Effect.gen(function*() {
      const { fd, running, world } = yield* setup({}, (w) => {
        w.armError = nativeError("execve", 2, "No such file or directory")
      })
      yield* world.connect(fd)
      yield* world.connect(fd)
      yield* settle
      expect(running()).toHaveLength(2)
      expect(world.laneStarts).toBe(0)
    }))

  it.scoped("shutdown stops the lane's instances and the serve loop's at once: the signal, SIGKILL at the stop timeout", () =>
    Effect.gen(function*() {
      const { fd, fiber, running, world } = yield* setup({
        stopTimeout: Duration.seconds(5),
        initialBackoff: Duration.seconds(1),
        maxBackoff: Duration.seconds(1)
      })
      // One instance by the serve loop (after a failed start), one by the lane.
      world.spawnError = nativeError("execve", 13, "Permission denied")
      yield* world.connect(fd)
      yield* settle
      world.spawnError = undefined
      yield* world.connect(fd)
      yield* advance("2 seconds")
      yield* world.connect(fd)
      yield* settle
      expect(running()).toHaveLength(2)
      expect(world.laneStarts).toBe(1)
      world.onTerm = "ignore"
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* settle
      expect(running().map((app) => app.signals)).toEqual([["SIGTERM"], ["SIGTERM"]])
      yield* advance("5 seconds")
      yield* Fiber.join(interrupting)
      expect(world.apps.filter((app) => app.signals.length > 0).map((app) => app.signals)).toEqual([
        ["SIGTERM", "SIGKILL"],
        ["SIGTERM", "SIGKILL"]
      ])
      expect(running()).toHaveLength(0)
    }))

  it.scoped("soad sleep stops the lane's instances; the lane goes on with the next connection", () =>
    Effect.gen(function*() {
      const { fd, handle, named, running, world } = yield* setup()
      yield* world.connect(fd)
      yield* world.connect(fd)
      yield* settle
      expect(yield* handle.sleep).toBe("stopped 2 instances")
      expect(running()).toHaveLength(0)
      expect(named("stopping").map((fields) => fields.reason)).toEqual(["requested", "requested"])
      expect(yield* handle.status).toMatchObject({ instances: 0 })
      yield* world.connect(fd)
      yield* settle
      expect(running()).toHaveLength(1)
      expect(world.laneStarts).toBe(3)
    }))
})
