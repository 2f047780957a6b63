/**
 * Reloads coalesce: requests during a reload fold into one more reload after it; a waiting request is answered by
 * the reload that starts after it. Under TestClock: a reload takes 300 ms of test time.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Reloads from "../../src/core/reloads.js"

/** A reloader whose reload takes 300 ms and returns its number (1, 2, …); `runs` lists when each started. */
const counting = Effect.gen(function*() {
  const runs: Array<number> = []
  const reloader = yield* Reloads.make(Effect.gen(function*() {
    runs.push(yield* TestClock.currentTimeMillis)
    yield* Effect.sleep("300 millis")
    return runs.length
  }))
  return { runs, reloader }
})

const turns = (n: number) => Effect.repeatN(Effect.yieldNow(), n)

describe("reloads", () => {
  it.scoped("30 requests over 1.5 s while a reload takes 300 ms: one reload at a time, each folding what came during the last", () =>
    Effect.gen(function*() {
      const { reloader, runs } = yield* counting
      for (let i = 0; i < 30; i++) {
        reloader.unsafeRequest()
        yield* turns(5)
        yield* TestClock.adjust("50 millis")
      }
      yield* TestClock.adjust("2 seconds")
      expect(runs).toEqual([0, 300, 600, 900, 1200, 1500])
    }))

  it.scoped("requests that come at once (one signal after another) are one reload", () =>
    Effect.gen(function*() {
      const { reloader, runs } = yield* counting
      for (let i = 0; i < 30; i++) {
        reloader.unsafeRequest()
        yield* turns(3)
      }
      yield* TestClock.adjust("2 seconds")
      expect(runs.length).toBeLessThanOrEqual(2)
    }))

  it.scoped("a waiting request is answered by the reload that starts after it", () =>
    Effect.gen(function*() {
      const { reloader, runs } = yield* counting
      const first = yield* Effect.fork(reloader.request)
      yield* turns(5)
      yield* TestClock.adjust("100 millis") // the first reload runs
      const second = yield* Effect.fork(reloader.request)
      const third = yield* Effect.fork(reloader.request)
      yield* turns(5)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(first)).toBe(1)
      expect(yield* Fiber.join(second)).toBe(2) // it came during the first: covered by the next one
      expect(yield* Fiber.join(third)).toBe(2) // folded into the same
      expect(runs).toEqual([0, 300])
    }))

  it.scoped("nothing runs without a request", () =>
    Effect.gen(function*() {
      const { runs } = yield* counting
      yield* TestClock.adjust("1 hour")
      expect(runs).toEqual([])
    }))
})
