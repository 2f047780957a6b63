import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as AppLogs from "../../src/observe/appLogs.js"
import * as ProcessService from "../../src/ProcessService.js"
import * as Signal from "../../src/Signal.js"
import { captureEvents, World } from "../../src/testing.js"

const request: ProcessService.SpawnRequest = {
  command: ["app"],
  env: {},
  inheritEnv: false,
  cwd: undefined,
  fds: [10],
  fdNames: ["soad"]
}
const policy: ProcessService.StopPolicy = { signal: Signal.SIGTERM, timeout: Duration.seconds(5) }

describe("ProcessService", () => {
  it.effect("an interruption the moment the fork returns still stops the app gracefully", () =>
    Effect.gen(function*() {
      const world = new World()
      let self: Fiber.RuntimeFiber<unknown, unknown> | undefined
      // The driver interrupts the spawning fiber from inside the fork: the first point where the old code could
      // be interrupted was before it had registered the app's stop.
      const driver: ProcessService.Driver = {
        ...world.driver,
        spawn: (req, onExit) => {
          const pid = world.driver.spawn(req, onExit)
          self?.unsafeInterruptAsFork(self.id())
          return pid
        }
      }
      const processes = yield* ProcessService.make(driver)
      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(processes.spawn(request, policy), Effect.never)))
      self = fiber
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(world.apps).toHaveLength(1)
      expect(world.apps[0]!.signals).toEqual(["SIGTERM"])
      expect(world.apps[0]!.running).toBe(false)
    }).pipe(Effect.provideService(AppLogs.AppLogs, AppLogs.inherit)))

  it.scoped("accept's lane: an instance that exits is reaped in its exit's own call; one that left processes by the fiber path, which kills and says them", () => {
    const { events, layer } = captureEvents()
    return Effect.gen(function*() {
      const world = new World()
      // Processes each instance left in its cgroup; SIGKILL (kill) takes them at once; rmdir fails while any is left.
      const left = new Map<number, number>()
      const removed: Array<number> = []
      const forgotten: Array<number> = []
      const pidOf = (cgroup: string) => Number(cgroup.split(".")[2])
      const containment: ProcessService.Containment = {
        guarantee: "cgroup",
        message: "",
        level: "info",
        fields: {},
        cgroupOf: (pid) => `soad.lane.${pid}`,
        kill: (cgroup) => {
          const count = left.get(pidOf(cgroup)) ?? 0
          left.set(pidOf(cgroup), 0)
          return count
        },
        remove: (cgroup) => {
          if ((left.get(pidOf(cgroup)) ?? 0) > 0) return false
          removed.push(pidOf(cgroup))
          return true
        },
        forget: (pid) => void forgotten.push(pid),
        leftovers: () => []
      }
      const processes = yield* ProcessService.make({ ...world.driver, containment })
      const { fd } = yield* world.sockets.open({ name: "soad", address: { _tag: "Unix", path: "/run/lane.sock" } }, {
        backlog: 16,
        mode: undefined,
        uid: undefined,
        gid: undefined
      })
      const exited: Array<{ readonly pid: number; readonly status: ProcessService.ExitStatus }> = []
      const lane = yield* processes.acceptLane!([fd], { ...request, fds: [-1], fdNames: ["connection"], connection: -1 }, policy, {
        admit: () => true,
        started: () => {},
        failed: () => {},
        acceptFailed: () => {},
        exited: (app, status) => void exited.push({ pid: app.pid, status })
      })
      for (let i = 0; i < 2; i++) {
        expect(lane.give()).toBeUndefined()
        yield* world.connect(fd)
      }
      const [a, b] = world.apps
      a!.exit(0)
      // In the exit's own call, no fiber between: its cgroup is gone and it is said exited.
      expect(exited).toEqual([{ pid: a!.pid, status: { code: 0, signal: null } }])
      expect(removed).toEqual([a!.pid])
      expect(forgotten).toEqual([a!.pid])
      left.set(b!.pid, 1)
      b!.exit(7)
      expect(exited).toHaveLength(1)
      for (let i = 0; i < 50 && exited.length < 2; i++) yield* Effect.yieldNow()
      expect(exited[1]).toEqual({ pid: b!.pid, status: { code: 7, signal: null } })
      expect(removed).toEqual([a!.pid, b!.pid])
      expect(forgotten).toEqual([a!.pid, b!.pid])
      expect(events.filter((event) => event.name === "leftovers_killed").map((event) => event.fields)).toEqual([
        { pid: b!.pid, count: 1 }
      ])
    }).pipe(Effect.provide(layer), Effect.provideService(AppLogs.AppLogs, AppLogs.inherit))
  })
})
