/**
 * The lifecycle core's phases: the pure table, and the phases a run goes through on the fake layers (seen as
 * `soad status` sees them), with the events each transition logs.
 */
import { expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Activator from "../../src/Activator.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { idlePhase, type Phase, type PhaseEvent, transition } from "../../src/core/lifecycle.js"
import * as Registry from "../../src/Registry.js"
import { advance, captureEvents, nativeError, settle, supervised, World } from "../../src/testing.js"
import { onBothPaths } from "./startPaths.js"

const spawned: PhaseEvent = { _tag: "Spawned", pid: 42, startedAt: 1000 }
const run = (events: ReadonlyArray<PhaseEvent>, from: Phase = idlePhase) => events.reduce(transition, from)

onBothPaths("phase table", () => {
  it("start → ready → stop → exit, with the pid and start time from the spawn until the exit", () => {
    const starting = transition(idlePhase, spawned)
    expect(starting).toEqual({ phase: "starting", pid: 42, startedAt: 1000 })
    const running = transition(starting, { _tag: "Ready" })
    expect(running).toEqual({ phase: "running", pid: 42, startedAt: 1000 })
    const stopping = transition(running, { _tag: "Stop" })
    expect(stopping).toEqual({ phase: "stopping", pid: 42, startedAt: 1000 })
    expect(transition(stopping, { _tag: "Exited" })).toEqual(idlePhase)
  })

  it("an app may exit by itself while it starts or runs, or be stopped before it is ready", () => {
    expect(run([spawned, { _tag: "Exited" }])).toEqual(idlePhase)
    expect(run([spawned, { _tag: "Ready" }, { _tag: "Exited" }])).toEqual(idlePhase)
    expect(run([spawned, { _tag: "Stop" }]).phase).toBe("stopping")
  })

  it("events a phase does not list change nothing", () => {
    expect(run([{ _tag: "Ready" }, { _tag: "Stop" }, { _tag: "Exited" }])).toEqual(idlePhase)
    const running = run([spawned, { _tag: "Ready" }])
    expect(transition(running, { ...spawned, pid: 7 })).toEqual(running)
    expect(transition(running, { _tag: "Ready" })).toEqual(running)
    const stopping = transition(running, { _tag: "Stop" })
    expect(run([{ _tag: "Stop" }, { _tag: "Ready" }, spawned], stopping)).toEqual(stopping)
  })
})

const setup = (fields: Partial<Omit<ServiceConfig.ServiceConfig, "command">> = {}) =>
  Effect.gen(function*() {
    const world = new World()
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
      command: ["app"],
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const handle = (yield* Effect.provide(Registry.Registry, context).pipe(Effect.flatMap((registry) => registry.services)))[0]!
    const state = Effect.map(handle.status, (status) => status.state)
    const names = () => events.map((event) => event.name)
    return { world, events, names, state, fd: listeners[0]!.fd }
  })

onBothPaths("a run through the core (hand-off mode)", () => {
  it.scoped("stopped → starting → running → stopping → stopped, one event per transition", () =>
    Effect.gen(function*() {
      const { fd, names, state, world } = yield* setup({ idleTimeout: Duration.seconds(10), stopTimeout: Duration.seconds(5) })
      expect(yield* state).toBe("stopped")
      world.accepting = false
      world.onTerm = "ignore"
      yield* world.connect(fd)
      yield* settle
      expect(yield* state).toBe("starting")
      world.acceptAll()
      yield* settle
      expect(yield* state).toBe("running")
      yield* advance("10 seconds")
      expect(yield* state).toBe("stopping")
      yield* advance("5 seconds") // SIGKILL at the stop timeout
      expect(yield* state).toBe("stopped")
      expect(names().filter((name) => name !== "listening")).toEqual(["starting", "started", "ready", "stopping", "kill", "exited"])
    }))

  it.scoped("a failed spawn stays stopped and shows as failing until a good run", () =>
    Effect.gen(function*() {
      const { events, fd, state, world } = yield* setup()
      world.spawnError = nativeError("execve", 13, "Permission denied")
      yield* world.connect(fd)
      yield* settle
      expect(yield* state).toBe("failing")
      expect(events.filter((event) => event.name === "start_failed")[0]!.fields).toMatchObject({ code: "EACCES" })
      world.spawnError = undefined
      yield* advance("1 second")
      expect(yield* state).toBe("running")
    }))

  it.scoped("an app that exits before it is ready is a crash: back to failing, with the backoff", () =>
    Effect.gen(function*() {
      const { events, fd, state, world } = yield* setup({ minUptime: Duration.seconds(5) })
      world.accepting = false
      yield* world.connect(fd)
      yield* settle
      world.running!.exit(1)
      yield* settle
      expect(yield* state).toBe("failing")
      expect(events.filter((event) => event.name === "exited")[0]!.fields).toMatchObject({ code: 1, by_itself: true })
      expect(events.filter((event) => event.name === "failing")[0]!.fields).toMatchObject({ failures: 1 })
    }))
})
