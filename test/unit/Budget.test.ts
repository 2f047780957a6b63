/**
 * The RAM budget's decisions, with several Activators on fake layers under TestClock.
 */
import { expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Activator from "../../src/Activator.js"
import * as Budget from "../../src/Budget.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import type { BudgetConfig } from "../../src/ConfigFile.js"
import { advance, settle, supervised, World } from "../../src/testing.js"
import { onBothPaths } from "./startPaths.js"

const setup = (budget: Partial<BudgetConfig>, names: ReadonlyArray<string>, memory = { available: 1e12 }) =>
  Effect.gen(function*() {
    const world = new World()
    const logs: Array<string> = []
    const logger = Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ message }) => {
        logs.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
    )
    const budgetService = yield* Budget.make(
      { maxRunning: undefined, minAvailableMemory: undefined, minWarm: Duration.seconds(30), ...budget },
      Effect.sync(() => memory.available)
    )
    const context = yield* Layer.build(
      Layer.mergeAll(world.layer, logger, Layer.succeed(Budget.Budget, budgetService))
    )
    const fds: Record<string, number> = {}
    for (const name of names) {
      const config = ServiceConfig.make({
        name,
        listeners: [{ name, address: { _tag: "Unix", path: `/run/${name}.sock` } }],
        command: [name],
        idleTimeout: Duration.hours(1)
      })
      const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
      fds[name] = listeners[0]!.fd
      yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    }
    yield* settle
    /** The running app of a service, found by its command. */
    const app = (name: string) => world.apps.find((candidate) => candidate.request.command[0] === name && candidate.running)
    return { world, logs, fds, app, budgetService }
  })

onBothPaths("Budget", () => {
  it.scoped("max-running: starting one more first stops a running app that is warm", () =>
    Effect.gen(function*() {
      const { app, fds, world } = yield* setup({ maxRunning: 1 }, ["blog", "wiki"])
      yield* world.connect(fds.blog!)
      yield* settle
      expect(app("blog")).toBeDefined()
      yield* advance("40 seconds")
      yield* world.connect(fds.wiki!)
      yield* settle
      expect(app("blog")).toBeUndefined()
      expect(world.apps.find((a) => a.request.command[0] === "blog")!.signals).toEqual(["SIGTERM"])
      expect(app("wiki")).toBeDefined()
    }))

  it.scoped("min-warm: an app younger than min-warm is not stopped; the new one waits until it may be", () =>
    Effect.gen(function*() {
      const { app, fds, logs, world } = yield* setup({ maxRunning: 1, minWarm: Duration.seconds(30) }, ["blog", "wiki"])
      yield* world.connect(fds.blog!)
      yield* settle
      yield* advance("10 seconds")
      yield* world.connect(fds.wiki!)
      yield* settle
      expect(app("wiki")).toBeUndefined()
      expect(logs.some((line) => line.includes("wiki waits: max-running is 1") && line.includes("in 20 s"))).toBe(true)
      yield* advance("19 seconds")
      expect(app("blog")).toBeDefined()
      expect(app("wiki")).toBeUndefined()
      yield* advance("1 second")
      expect(app("blog")).toBeUndefined()
      expect(app("wiki")).toBeDefined()
    }))

  it.scoped("the least recently active app is the one stopped", () =>
    Effect.gen(function*() {
      const { app, fds, logs, world } = yield* setup({ maxRunning: 2 }, ["a", "b", "c"])
      yield* world.connect(fds.a!)
      yield* world.connect(fds.b!)
      yield* settle
      yield* advance("60 seconds")
      yield* world.connect(fds.a!) // a is active again; b has been idle for 60 s
      yield* advance("10 seconds")
      yield* world.connect(fds.c!)
      yield* settle
      expect(app("a")).toBeDefined()
      expect(app("b")).toBeUndefined()
      expect(app("c")).toBeDefined()
      expect(logs.some((line) => line.includes("stopping the app") && line.includes("to make room for c") && line.includes("idle for 70 s"))).toBe(true)
    }))

  it.scoped("an app that stops by itself frees its place", () =>
    Effect.gen(function*() {
      const { app, fds, world } = yield* setup({ maxRunning: 1, minWarm: Duration.hours(1) }, ["blog", "wiki"])
      yield* world.connect(fds.blog!)
      yield* settle
      yield* world.connect(fds.wiki!)
      yield* advance("5 seconds")
      expect(app("wiki")).toBeUndefined()
      app("blog")!.exit(0)
      yield* advance("1 second")
      expect(app("wiki")).toBeDefined()
    }))

  it.scoped("min-available-memory: stops the least recently active warm app when memory is short", () =>
    Effect.gen(function*() {
      const memory = { available: 1e9 }
      const { app, fds, world } = yield* setup({ minAvailableMemory: 200e6 }, ["a", "b", "c"], memory)
      yield* world.connect(fds.a!)
      yield* settle
      yield* advance("40 seconds")
      yield* world.connect(fds.b!)
      yield* advance("40 seconds")
      memory.available = 150e6
      yield* world.connect(fds.c!)
      yield* settle
      expect(app("a")).toBeUndefined()
      expect(app("c")).toBeDefined()
    }))

  it.scoped("min-available-memory with no app that may be stopped: starts anyway and says why", () =>
    Effect.gen(function*() {
      const memory = { available: 100e6 }
      const { app, fds, logs, world } = yield* setup({ minAvailableMemory: 200e6 }, ["a", "b"], memory)
      yield* world.connect(fds.a!)
      yield* settle
      yield* world.connect(fds.b!)
      yield* settle
      expect(app("a")).toBeDefined()
      expect(app("b")).toBeDefined()
      expect(logs.some((line) => line.includes("starting b although 100 MB available, min-available-memory is 200 MB"))).toBe(true)
    }))

  it.scoped("a service that waits for room stops waiting when soad shuts down (the close does not wait for room)", () =>
    Effect.gen(function*() {
      const { app, fds, world } = yield* setup({ maxRunning: 1 }, ["blog", "wiki"])
      yield* world.connect(fds.blog!)
      yield* settle
      yield* advance("10 seconds")
      yield* world.connect(fds.wiki!) // blog is younger than min-warm: wiki waits for room
      yield* settle
      expect(app("wiki")).toBeUndefined()
      // The scope of the test closes here, with wiki still waiting: before, the wait was an uninterruptible acquire
      // and the close (soad's shutdown) hung until min-warm had passed and wiki had been started.
    }))
})
