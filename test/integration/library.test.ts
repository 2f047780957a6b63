/**
 * soad as a library: the README's example, an Effect program that runs an activator in its own scope with the
 * live layers, imported from the package entry point.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, expect, it } from "vitest"
import { Activator, AppNotify, ProcessService, Registry, RelayService, ServiceConfig, Services, SoadContext, SocketService } from "../../src/index.js"
import { alive, appFixture, get, tempDir } from "../harness.js"

const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) Fs.rmSync(d, { recursive: true, force: true })
})

it("runs an activator inside another program's scope; closing the scope stops the app and removes the socket", async () => {
  const d = tempDir()
  dirs.push(d)
  const socketPath = Path.join(d, "lib.sock")
  const config = ServiceConfig.make({
    listeners: [{ name: "http", address: { _tag: "Unix", path: socketPath } }],
    command: [process.execPath, appFixture],
    idleTimeout: "1 minute"
  })
  const scope = Effect.runSync(Scope.make())
  const live = Layer.mergeAll(SocketService.layer, ProcessService.layer, RelayService.layer, AppNotify.layer, SoadContext.defaults)
  await Effect.runPromise(Activator.start(config).pipe(Scope.extend(scope), Effect.provide(live)))
  expect(Fs.statSync(socketPath).isSocket()).toBe(true)

  const reply = await get({ socketPath })
  expect(reply.name).toBe("http")
  expect(alive(reply.pid as number)).toBe(true)

  await Effect.runPromise(Scope.close(scope, Exit.void))
  expect(alive(reply.pid as number)).toBe(false)
  expect(Fs.existsSync(socketPath)).toBe(false)
})

it("hosts a whole config as a layer: ServiceConfig.make from address strings, Registry for status, wake and sleep", async () => {
  const d = tempDir()
  dirs.push(d)
  const socketPath = Path.join(d, "hosted.sock")
  const blog = ServiceConfig.make({ name: "blog", listeners: [`http=${socketPath}`], command: [process.execPath, appFixture] })
  expect(blog.listeners).toEqual([{ name: "http", address: { _tag: "Unix", path: socketPath } }])
  expect(() => ServiceConfig.make({ listeners: ["http=not a port:x"], command: ["x"] })).toThrow(ServiceConfig.ServiceConfigError)
  expect(() => ServiceConfig.make({ listeners: [socketPath], command: ["x"], user: -1 })).toThrow(/whole numbers/)

  const program = Effect.gen(function*() {
    const registry = yield* Registry.Registry
    // each service registers as its fiber starts, just after the layer is built
    const [handle] = yield* registry.services.pipe(
      Effect.filterOrFail((handles) => handles.length > 0, () => "not registered yet"),
      Effect.retry(Schedule.spaced("10 millis"))
    )
    expect(handle!.name).toBe("blog")
    expect(yield* handle!.wake).toBe("starting")
    const reply = yield* Effect.promise(() => get({ socketPath }))
    const status = yield* handle!.status
    expect(status.pid).toBe(reply.pid)
    expect(["starting", "running"]).toContain(status.state)
    expect(yield* handle!.sleep).toBe("stopped")
    expect(alive(reply.pid as number)).toBe(false)
  })
  const hosted = Services.layer({ services: [blog] }).pipe(Layer.provideMerge(Registry.layer), Layer.provide(SoadContext.layer))
  await Effect.runPromise(Effect.provide(program, hosted))
  expect(Fs.existsSync(socketPath)).toBe(false) // releasing the layer closed the listener
})
