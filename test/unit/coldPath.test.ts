/**
 * The cold path (ProcessService.spawnOnPending): an idle hand-off service's listeners are armed with the app's
 * start, which the first connection fires without JS in between. Its semantics are decided in Effect and tested
 * here against the fakes (whose driver arms as the native one does) under TestClock: when a service is armed and
 * when not (backoff, budget, --ready notify), what a wake, a failed start and a shutdown do to an armed start.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Activator from "../../src/Activator.js"
import * as Budget from "../../src/Budget.js"
import * as Registry from "../../src/Registry.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { advance, captureEvents, nativeError, settle, supervised, World } from "../../src/testing.js"

/** A RAM budget as a config file's `[budget]` makes one (`Services` gives it to each service). */
const budgetOf = (maxRunning: number | undefined) =>
  Layer.effect(Budget.Budget, Budget.make({ maxRunning, minAvailableMemory: undefined, minWarm: Duration.zero }, Effect.succeed(0)))

/** The service on the fakes; its budget is the world's (unlimited) unless `budget` gives another. */
const setup = (fields: Partial<Omit<ServiceConfig.ServiceConfig, "command">> = {}, budget?: Layer.Layer<Budget.Budget>) =>
  Effect.gen(function*() {
    const world = new World()
    world.armable = true
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer, budget ?? Layer.empty))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
      command: ["app"],
      idleTimeout: Duration.seconds(10),
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    const fiber = yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const handle = (yield* Effect.provide(Registry.Registry, context).pipe(Effect.flatMap((registry) => registry.services)))[0]!
    const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
    return { world, named, handle, fiber, fd: listeners[0]!.fd }
  })

describe("the cold path", () => {
  it.scoped("an idle service is armed; the connection starts the app through it, and it is armed again once idle", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      expect(world.armed).toBe(1)
      yield* world.connect(fd)
      yield* settle
      expect(world.coldStarts).toBe(1)
      expect(world.armed).toBe(0) // fired: nothing armed while the app runs
      expect(world.apps).toHaveLength(1)
      expect(world.apps[0]!.running).toBe(true)
      expect(named("started")).toEqual([expect.objectContaining({ trigger: "connection", armed: true, pid: world.apps[0]!.pid })])
      expect(named("ready")).toHaveLength(1)
      yield* advance("10 seconds")
      expect(world.apps[0]!.running).toBe(false)
      expect(world.armed).toBe(1)
      yield* world.connect(fd)
      yield* settle
      expect(world.coldStarts).toBe(2)
      expect(world.apps[1]!.running).toBe(true)
    }))

  it.scoped("soad wake disarms the armed start and starts the app itself; nothing is started twice", () =>
    Effect.gen(function*() {
      const { fd, handle, named, world } = yield* setup()
      expect(world.armed).toBe(1)
      expect(yield* handle.wake).toBe("starting")
      yield* settle
      expect(world.armed).toBe(0)
      expect(world.coldStarts).toBe(0)
      expect(world.apps).toHaveLength(1)
      expect(named("started")).toEqual([expect.objectContaining({ trigger: "wake", armed: false })])
      yield* world.connect(fd) // taken by the running app
      yield* settle
      expect(world.apps).toHaveLength(1)
      expect(world.coldStarts).toBe(0)
    }))

  it.scoped("a wake right after a stop (soad restart: sleep, then wake) starts the app again, whichever fired the last start", () =>
    Effect.gen(function*() {
      // Fault: the armed start's wake listener stayed subscribed after the start it armed had fired, so a wake that
      // came before the next arming went to it and was lost: `soad restart` said "starting" and nothing started.
      const { fd, handle, world } = yield* setup()
      for (const [i, startBy] of (["wake", "connection"] as const).entries()) {
        if (startBy === "wake") expect(yield* handle.wake).toBe("starting")
        else yield* world.connect(fd)
        yield* settle
        expect(world.apps).toHaveLength(2 * i + 1)
        expect(yield* handle.sleep).toBe("stopped")
        expect(yield* handle.wake).toBe("starting")
        yield* settle
        expect(world.apps).toHaveLength(2 * i + 2)
        expect(world.apps[2 * i + 1]!.running).toBe(true)
        expect(yield* handle.sleep).toBe("stopped")
        yield* settle
      }
    }))

  it.scoped("a shutdown while armed disarms it: no app, nothing left armed", () =>
    Effect.gen(function*() {
      const { fiber, world } = yield* setup()
      expect(world.armed).toBe(1)
      yield* Fiber.interrupt(fiber)
      expect(world.armed).toBe(0)
      expect(world.apps).toHaveLength(0)
    }))

  it.scoped("a start that fails at the connection is a failed start; the next tries wait for the backoff, unarmed", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      world.spawnError = nativeError("execve", 13, "Permission denied")
      yield* world.connect(fd) // stays pending: no app takes it
      yield* settle
      expect(world.coldStarts).toBe(1)
      expect(named("start_failed")).toEqual([expect.objectContaining({ code: "EACCES" })])
      // The backoff is pending: the listener is watched, not armed, and nothing starts before the delay.
      expect(world.armed).toBe(0)
      expect(world.spawnAttempts).toBe(1)
      yield* advance("399 millis")
      expect(world.spawnAttempts).toBe(1)
      world.spawnError = undefined
      yield* advance("1 second")
      expect(world.spawnAttempts).toBe(2)
      expect(world.apps[0]!.running).toBe(true)
      expect(world.coldStarts).toBe(1) // the retry went by the slow path
    }))

  it.scoped("a crash makes the next start wait for its backoff even though a connection is already pending", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ minUptime: Duration.seconds(5) })
      yield* world.connect(fd)
      yield* settle
      world.apps[0]!.exit(1) // crashes at once: a failure, backoff 0.5 s ± 20 %
      world.accepting = false
      yield* world.connect(fd)
      yield* settle
      expect(world.armed).toBe(0)
      expect(world.apps).toHaveLength(1)
      yield* advance("399 millis")
      expect(world.apps).toHaveLength(1)
      yield* advance("1 second")
      expect(world.apps).toHaveLength(2)
    }))

  it.scoped("a start that cannot be armed (the command not found yet) is said at debug; the connection starts it after the wake", () =>
    Effect.gen(function*() {
      const world = new World()
      world.armError = nativeError("execve", 2, "No such file or directory")
      const { events, layer } = captureEvents()
      const context = yield* Layer.build(Layer.mergeAll(world.layer, layer))
      const config = ServiceConfig.make({
        listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
        command: ["app"]
      })
      const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
      yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
      yield* settle
      expect(world.armed).toBe(0)
      expect(events.filter((event) => event.name === "not_armed").map((event) => event.fields)).toEqual([
        expect.objectContaining({ code: "ENOENT" })
      ])
      world.armError = undefined // the command is there by the time the connection comes
      yield* world.connect(listeners[0]!.fd)
      yield* settle
      expect(world.coldStarts).toBe(0)
      expect(world.apps).toHaveLength(1)
      expect(world.apps[0]!.running).toBe(true)
    }))

  it.scoped("with a RAM budget the service is never armed: room is made before each start", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({}, budgetOf(4))
      expect(world.armed).toBe(0)
      yield* world.connect(fd)
      yield* settle
      expect(world.coldStarts).toBe(0)
      expect(world.apps[0]!.running).toBe(true)
    }))

  it.scoped("a config file's budget arms nothing even without limits: a reload may set them (config mode waits unarmed)", () =>
    Effect.gen(function*() {
      const { world } = yield* setup({}, budgetOf(undefined))
      expect(world.armed).toBe(0)
    }))

  it.scoped("an unlimited budget (one service's, SoadContext's default) is armed: its admission never waits", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({}, Budget.layerUnlimited)
      expect(world.armed).toBe(1)
      yield* world.connect(fd)
      yield* settle
      expect(world.coldStarts).toBe(1)
      expect(world.apps[0]!.running).toBe(true)
    }))

  it.scoped("with --ready notify the service is never armed: the run's notify socket comes first", () =>
    Effect.gen(function*() {
      const { world } = yield* setup({ ready: "notify" })
      expect(world.armed).toBe(0)
    }))
})
