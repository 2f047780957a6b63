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
import * as Metric from "effect/Metric"
import * as Accept from "../../src/modes/accept.js"
import * as Activator from "../../src/Activator.js"
import * as Metrics from "../../src/observe/metrics.js"
import * as ProcessService from "../../src/ProcessService.js"
import * as Registry from "../../src/Registry.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import { advance, captureEvents, nativeError, settle, supervised, World } from "../../src/testing.js"
import { onBothPaths } from "./startPaths.js"

const setup = (fields: Partial<ServiceConfig.Fields> = {}) =>
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

onBothPaths("Accept", () => {
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

  describe("--max-connections-per-source", () => {
    /** A client of this IPv4 (or IPv6) address. */
    const from = (ip: string, port = 40000) => ({ remote: { ip, port } })
    const refusedSoFar = (service: string) =>
      Metric.value(Metric.tagged(Metrics.forService(Metrics.acceptRefused, service), "reason", "per_source")).pipe(
        Effect.map((state) => state.count)
      )
    /** `service`'s per-source refusals from now on (the metric is the process's, and these tests run twice in it). */
    const refusals = (service: string) =>
      Effect.map(refusedSoFar(service), (start) => Effect.map(refusedSoFar(service), (count) => count - start))

    it.scoped("a source with its share has its next connection closed at once, counted and said; another source is served", () =>
      Effect.gen(function*() {
        const { fd, named, running, world } = yield* setup({ name: "per-ip", maxConnections: 4, maxConnectionsPerSource: 2 })
        const refused = yield* refusals("per-ip")
        // Attack: one address opens three idle connections, then holds on. Promise: it gets two instances, the
        // third connection is closed (not kept waiting), and a client from elsewhere is still served.
        for (const port of [1, 2, 3]) yield* world.connect(fd, from("203.0.113.7", port))
        yield* world.connect(fd, from("198.51.100.2"))
        yield* settle
        expect(world.accepted).toHaveLength(4)
        expect(running().map((app) => app.request.env.REMOTE_ADDR)).toEqual(["203.0.113.7", "203.0.113.7", "198.51.100.2"])
        const third = world.accepted[2]!
        expect(world.acceptedOpen.has(third.fd)).toBe(false) // closed by soad
        expect(running().some((app) => app.request.connection === third.fd)).toBe(false)
        expect(named("accept_refused")).toEqual([
          expect.objectContaining({ reason: "per_source", count: 1, source: "203.0.113.7", max_connections_per_source: 2 })
        ])
        expect(yield* refused).toBe(1)
        // The same client over a dual-stack listener (IPv4-mapped IPv6) is the same source.
        yield* world.connect(fd, from("::ffff:203.0.113.7", 4))
        yield* settle
        expect(running()).toHaveLength(3)
        expect(yield* refused).toBe(2)
        // One of its instances ends: it may start one again.
        running()[0]!.exit(0)
        yield* settle
        yield* world.connect(fd, from("203.0.113.7", 5))
        yield* settle
        expect(running().map((app) => app.request.env.REMOTE_ADDR)).toEqual(["203.0.113.7", "198.51.100.2", "203.0.113.7"])
        expect(yield* refused).toBe(2)
      }))

    it.scoped("on a UNIX socket the source is the peer's uid", () =>
      Effect.gen(function*() {
        const { fd, running, world } = yield* setup({ name: "per-uid", maxConnections: 8, maxConnectionsPerSource: 1 })
        const refused = yield* refusals("per-uid")
        yield* world.connect(fd, { uid: 1000 })
        yield* world.connect(fd, { uid: 1000 })
        yield* world.connect(fd, { uid: 33 })
        yield* world.connect(fd, { uid: 0 })
        yield* settle
        expect(world.accepted).toHaveLength(4)
        expect(running().map((app) => world.accepted.find((c) => c.fd === app.request.connection)!.uid)).toEqual([1000, 33, 0])
        expect(yield* refused).toBe(1)
      }))

    it.scoped("refusals are said at most once a second: the first at once, the rest counted at the end of the second", () =>
      Effect.gen(function*() {
        const { fd, named, world } = yield* setup({ name: "per-ip-log", maxConnections: 4, maxConnectionsPerSource: 1 })
        const refused = yield* refusals("per-ip-log")
        const attacker = from("192.0.2.66")
        const attack = (n: number) => Effect.forEach(Array.from({ length: n }), () => world.connect(fd, attacker))
        yield* world.connect(fd, attacker)
        yield* attack(5)
        yield* settle
        const counts = () => named("accept_refused").map((fields) => fields.count)
        expect(counts()).toEqual([1])
        yield* advance("999 millis")
        expect(counts()).toEqual([1])
        yield* advance("1 millis")
        expect(counts()).toEqual([1, 4])
        yield* advance("500 millis")
        yield* attack(3)
        yield* settle
        expect(counts()).toEqual([1, 4])
        yield* advance("500 millis")
        expect(counts()).toEqual([1, 4, 3])
        yield* advance("5 seconds") // a second with none: the next is said at once again
        yield* attack(1)
        yield* settle
        expect(counts()).toEqual([1, 4, 3, 1])
        expect(yield* refused).toBe(9)
      }))

    it("defaults to half of --max-connections (rounded up) per client address, and --max-connections per UNIX uid", () => {
      const make = (fields: Partial<ServiceConfig.Fields>) =>
        ServiceConfig.make({ listeners: ["/run/a.sock"], command: ["handler"], accept: true, ...fields })
      const limits = ({ mode }: ServiceConfig.ServiceConfig) => {
        if (mode._tag !== "Accept") throw new Error(`not accept mode: ${mode._tag}`)
        return [ServiceConfig.perSourceLimit(mode, "ip"), ServiceConfig.perSourceLimit(mode, "unix")]
      }
      expect(limits(make({}))).toEqual([32, 64])
      expect(limits(make({ maxConnections: 5 }))).toEqual([3, 5])
      expect(limits(make({ maxConnections: 1 }))).toEqual([1, 1])
      expect(limits(make({ maxConnections: 8, maxConnectionsPerSource: 2 }))).toEqual([2, 2])
      // Above --max-connections it could never be reached: lowered to it.
      expect(limits(make({ maxConnections: 4, maxConnectionsPerSource: 9 }))).toEqual([4, 4])
    })

    it.scoped("by default, idle clients of one address cannot take every instance, but one local user can", () =>
      Effect.gen(function*() {
        const { fd, running, world } = yield* setup({ name: "per-default", maxConnections: 4 })
        const refused = yield* refusals("per-default")
        for (let i = 0; i < 4; i++) yield* world.connect(fd, from("203.0.113.8", i))
        yield* settle
        expect(running()).toHaveLength(2)
        yield* world.connect(fd, from("2001:db8::5"))
        yield* settle
        expect(running()).toHaveLength(3)
        yield* world.connect(fd, { uid: 1000 })
        yield* settle
        expect(running()).toHaveLength(4)
        expect(yield* refused).toBe(2)
      }))
  })

  describe("--max-accept-rate", () => {
    it.scoped("2/1s: a burst of 2, then one start every 500 ms to the millisecond; the others wait in the backlog, none refused", () =>
      Effect.gen(function*() {
        const { fd, named, running, world } = yield* setup({ maxAcceptRate: { count: 2, per: Duration.seconds(1) } })
        for (let i = 0; i < 6; i++) yield* world.connect(fd, { remote: { ip: `198.51.100.${i}`, port: 1 } })
        yield* settle
        const seen: Array<[number, number]> = []
        const look = (at: number) => seen.push([at, world.accepted.length])
        look(0)
        for (const step of [499, 1, 499, 1, 500, 500]) {
          yield* advance(Duration.millis(step))
          look(seen.at(-1)![0] + step)
        }
        expect(seen).toEqual([[0, 2], [499, 2], [500, 3], [999, 3], [1000, 4], [1500, 5], [2000, 6]])
        expect(running()).toHaveLength(6)
        expect(world.backlog.get(fd)).toBe(0)
        expect(named("accept_rate_limited")).toEqual([expect.objectContaining({ max_accept_rate: "2/1s" })])
        // Idle for a second, the bucket is full again: a burst of 2 at once, and the limit is said again.
        yield* advance("1 second")
        for (let i = 0; i < 3; i++) yield* world.connect(fd, { remote: { ip: "198.51.100.9", port: i } })
        yield* settle
        expect(world.accepted).toHaveLength(8)
        yield* advance("500 millis")
        expect(world.accepted).toHaveLength(9)
        expect(named("accept_rate_limited")).toHaveLength(2)
      }))

    it.scoped("a connection refused by its source's limit costs no token: the next source is served at its token's time", () =>
      Effect.gen(function*() {
        const { fd, running, world } = yield* setup({
          maxAcceptRate: { count: 1, per: Duration.seconds(1) },
          maxConnectionsPerSource: 1
        })
        yield* world.connect(fd, { remote: { ip: "192.0.2.1", port: 1 } })
        yield* world.connect(fd, { remote: { ip: "192.0.2.1", port: 2 } })
        yield* world.connect(fd, { remote: { ip: "192.0.2.2", port: 1 } })
        yield* settle
        expect(world.accepted).toHaveLength(1)
        yield* advance("1 second")
        // The refused one took its token at 1 s and gave it back: the other source's start is at 1 s too.
        expect(world.accepted).toHaveLength(3)
        expect(running().map((app) => app.request.env.REMOTE_ADDR)).toEqual(["192.0.2.1", "192.0.2.2"])
      }))
  })
})
