import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as ProcessService from "../../src/ProcessService.js"
import * as Signal from "../../src/Signal.js"
import { World } from "../../src/testing.js"

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
    }))
})
