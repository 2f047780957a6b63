/**
 * `--accept` (a process per connection) against the fakes under TestClock: the permits hold connections in the
 * backlog beyond --max-connections, each instance gets its own connection and soad closes its copy, a crash does
 * not stop serving, a command that cannot start backs off, EMFILE pauses accepting, and a shutdown stops every
 * instance by the stop policy.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Accept from "../../src/Accept.js"
import * as Activator from "../../src/Activator.js"
import * as ProcessService from "../../src/ProcessService.js"
import * as Registry from "../../src/Registry.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { advance, settle, supervised } from "../clock.js"
import { captureEvents, nativeError, World } from "../fakes.js"

const setup = (fields: Partial<Omit<ServiceConfig.ServiceConfig, "command">> = {}) =>
  Effect.gen(function*() {
    const world = new World()
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
    const config = ServiceConfig.make({
      listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
      command: ["echo-server"],
      accept: true,
      ...fields
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    const fiber = yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const named = (name: string) => events.filter((event) => event.name === name).map((event) => event.fields)
    const running = () => world.apps.filter((app) => app.running)
    const status = Effect.flatMap(
      Effect.flatMap(Registry.Registry, (registry) => registry.services),
      (services) => services[0]!.status
    ).pipe(Effect.provide(context))
    const sleep = Effect.flatMap(
      Effect.flatMap(Registry.Registry, (registry) => registry.services),
      (services) => services[0]!.sleep
    ).pipe(Effect.provide(context))
    const stopLines = () => events.filter((event) => event.name === "stopping").map(({ fields, message }) => ({ reason: fields.reason, message }))
    return { world, named, fiber, fd: listeners[0]!.fd, running, status, sleep, stopLines }
  })

describe("Accept", () => {
  it("an instance never inherits soad's own REMOTE_ADDR/REMOTE_PORT: a UNIX connection has none", () => {
    const config = ServiceConfig.make({ listeners: ["/run/a.sock"], command: ["handler"], accept: true })
    const env = ProcessService.environment({ PATH: "/bin", REMOTE_ADDR: "203.0.113.9", REMOTE_PORT: "1" }, Accept.instanceRequest(config, { fd: 20 }))
    expect(env.filter((entry) => entry.startsWith("REMOTE_"))).toEqual([])
    expect(env).toEqual(expect.arrayContaining(["PATH=/bin", "LISTEN_FDS=1", "LISTEN_FDNAMES=connection"]))
    const tcp = ProcessService.environment({}, Accept.instanceRequest(config, { fd: 20, remote: { ip: "::1", port: 5 } }))
    expect(tcp).toEqual(expect.arrayContaining(["REMOTE_ADDR=::1", "REMOTE_PORT=5"]))
  })

  it.scoped("with --max-connections 2, a third connection waits in the backlog until an instance exits", () =>
    Effect.gen(function*() {
      const { fd, running, world } = yield* setup({ maxConnections: 2 })
      for (let i = 0; i < 3; i++) yield* world.connect(fd)
      yield* settle
      // Fault: a third client while two instances run. Promise: it is not accepted (so never refused), it waits.
      expect(world.accepted).toHaveLength(2)
      expect(running()).toHaveLength(2)
      expect(world.backlog.get(fd)).toBe(1)
      yield* advance("10 minutes")
      expect(world.accepted).toHaveLength(2)
      running()[0]!.exit(0)
      yield* settle
      expect(world.accepted).toHaveLength(3)
      expect(running()).toHaveLength(2)
      expect(world.backlog.get(fd)).toBe(0)
    }))

  it.scoped("an instance gets its connection as fds 0, 1 and 3 with the peer's address; soad closes its copy", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup()
      world.remote = { ip: "2001:db8::1", port: 40123 }
      yield* world.connect(fd)
      yield* settle
      const app = world.apps[0]!
      const connection = world.accepted[0]!
      expect(app.request.connection).toBe(connection.fd)
      expect(app.request.fds).toEqual([connection.fd])
      expect(app.request.fdNames).toEqual(["connection"])
      expect(app.request.env).toMatchObject({ REMOTE_ADDR: "2001:db8::1", REMOTE_PORT: "40123" })
      expect(world.acceptedOpen.size).toBe(0) // the app has it; soad's copy is closed
      expect(app.running).toBe(true)
    }))

  it.scoped("no idle timeout: an instance runs as long as its connection, however long", () =>
    Effect.gen(function*() {
      const { fd, world } = yield* setup({ idleTimeout: Duration.seconds(1) })
      yield* world.connect(fd)
      yield* settle
      yield* advance("1 hour")
      expect(world.apps[0]!.running).toBe(true)
      expect(world.apps[0]!.signals).toEqual([])
    }))

  it.scoped("a crashing instance is logged with its status and serving goes on", () =>
    Effect.gen(function*() {
      const { fd, named, status, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      world.apps[0]!.exit(3)
      yield* settle
      expect(named("instance_exited")).toEqual([expect.objectContaining({ pid: world.apps[0]!.pid, code: 3 })])
      yield* world.connect(fd)
      yield* settle
      expect(world.apps).toHaveLength(2)
      expect(world.apps[1]!.running).toBe(true)
      expect(yield* status).toMatchObject({ state: "running", instances: 1, activations: 2, crashes: 1 })
    }))

  it.scoped("a command that cannot start closes the connection and backs off before the next is taken", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup({ initialBackoff: Duration.seconds(1), maxBackoff: Duration.seconds(1) })
      world.spawnError = nativeError("execve", 2, "No such file or directory")
      yield* world.connect(fd)
      yield* world.connect(fd)
      yield* settle
      expect(named("start_failed")).toEqual([expect.objectContaining({ code: "ENOENT", failures: 1 })])
      expect(world.accepted).toHaveLength(1)
      expect(world.acceptedOpen.size).toBe(0)
      expect(world.backlog.get(fd)).toBe(1) // no fork storm: the next waits for the backoff
      world.spawnError = undefined
      yield* advance("2 seconds")
      expect(world.accepted).toHaveLength(2)
      expect(world.apps.filter((app) => app.running)).toHaveLength(1)
    }))

  it.scoped("out of fds, accepting pauses and is said once; it resumes when fds are back", () =>
    Effect.gen(function*() {
      const { fd, named, world } = yield* setup()
      world.acceptError = "EMFILE"
      yield* world.connect(fd)
      yield* settle
      yield* advance("5 seconds")
      expect(named("accept_failed")).toEqual([expect.objectContaining({ code: "EMFILE" })])
      expect(world.apps).toHaveLength(0)
      world.acceptError = undefined
      yield* advance("1 second")
      expect(world.apps).toHaveLength(1)
      expect(named("accept_recovered")).toHaveLength(1)
    }))

  it.scoped("out of fds for an instance, the connection taken is kept and its start tried again; the others wait", () =>
    Effect.gen(function*() {
      // Fault: with fds exhausted, the instance's log pipe could not be made; soad closed the connection it had
      // accepted (the client saw it dropped) and counted a failed start of the command.
      // Promise: that connection waits for its instance, nothing more is accepted meanwhile, it is said once, and it
      // is no failed start.
      const { fd, named, world } = yield* setup()
      world.spawnError = nativeError("pipe", 24, "Too many open files")
      yield* world.connect(fd)
      yield* world.connect(fd)
      yield* settle
      yield* advance("5 seconds")
      expect(world.accepted).toHaveLength(1)
      expect(world.acceptedOpen.size).toBe(1) // kept open
      expect(world.backlog.get(fd)).toBe(1)
      expect(world.spawnAttempts).toBeGreaterThan(3)
      expect(named("fd_exhausted")).toEqual([expect.objectContaining({ code: "EMFILE" })])
      expect(named("start_failed")).toHaveLength(0)
      world.spawnError = undefined
      yield* advance("1 second")
      expect(world.apps.filter((app) => app.running)).toHaveLength(2)
      expect(world.apps[0]!.request.connection).toBe(world.accepted[0]!.fd)
      expect(named("fd_recovered")).toHaveLength(1)
    }))

  it.scoped("shutdown stops every running instance by the stop policy: the signal, SIGKILL at the stop timeout", () =>
    Effect.gen(function*() {
      const { fd, fiber, running, world } = yield* setup({ stopTimeout: Duration.seconds(5) })
      yield* world.connect(fd)
      yield* world.connect(fd)
      yield* settle
      world.onTerm = "ignore"
      expect(running()).toHaveLength(2)
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* settle
      expect(world.apps.map((app) => app.signals)).toEqual([["SIGTERM"], ["SIGTERM"]])
      yield* advance("5 seconds")
      yield* Fiber.join(interrupting)
      expect(world.apps.map((app) => app.signals)).toEqual([["SIGTERM", "SIGKILL"], ["SIGTERM", "SIGKILL"]])
      expect(running()).toHaveLength(0)
    }))

  it.scoped("soad sleep's stop line says it was requested, and a shutdown's that soad is shutting down", () =>
    Effect.gen(function*() {
      // Fault: instances stopped by `soad sleep` were logged as stopped by a shutdown, while soad ran on.
      // Promise: the stop line and its reason say what happened: requested (soad sleep), then shutdown.
      const { fd, fiber, sleep, stopLines, world } = yield* setup()
      yield* world.connect(fd)
      yield* settle
      const first = world.apps[0]!.pid
      expect(yield* sleep).toBe("stopped 1 instance")
      expect(stopLines()).toEqual([
        { reason: "requested", message: `stopping the instance (pid ${first}) on request (soad sleep) with SIGTERM` }
      ])
      yield* world.connect(fd)
      yield* settle
      const second = world.apps[1]!.pid
      yield* Fiber.interrupt(fiber)
      expect(stopLines()[1]).toEqual({
        reason: "shutdown",
        message: `soad is shutting down: stopping the instance (pid ${second}) with SIGTERM`
      })
    }))
})
