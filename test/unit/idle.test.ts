import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as Idle from "../../src/core/idle.js"

const rule: Idle.Rule = { idleMillis: 60_000, recheckMillis: 1_000 }
const seen = (fields: Partial<Idle.Observation>): Idle.Observation => ({
  now: 100_000,
  lastActivity: 40_000,
  pending: false,
  open: 0,
  ...fields
})

describe("the idle decision", () => {
  it("idle exactly when the idle time has passed since the last activity", () => {
    expect(Idle.decide(rule, seen({ now: 99_999 }))).toMatchObject({ _tag: "Wait", until: 100_000 })
    expect(Idle.decide(rule, seen({}))).toEqual({ _tag: "Idle", idleFor: 60_000 })
  })

  it("a later activity moves the deadline", () => {
    expect(Idle.decide(rule, seen({ lastActivity: 50_000 }))).toMatchObject({ _tag: "Wait", until: 110_000, lastActivity: 50_000 })
  })

  it("a waiting connection is activity now: a whole idle time more", () => {
    expect(Idle.decide(rule, seen({ pending: true }))).toMatchObject({ _tag: "Wait", until: 160_000, lastActivity: 100_000 })
  })

  it("an open connection keeps the app, looked at again after the recheck interval (or -t if shorter)", () => {
    expect(Idle.decide(rule, seen({ open: 2 }))).toMatchObject({ _tag: "Wait", until: 101_000, lastActivity: 40_000, open: 2 })
    expect(Idle.decide({ idleMillis: 500, recheckMillis: 1_000 }, seen({ lastActivity: 99_000, open: 1 })))
      .toMatchObject({ until: 100_500 })
  })
})

describe("looking until idle, on the Clock", () => {
  it.effect("the look runs at each deadline the decisions ask for, and nowhere in between", () =>
    Effect.gen(function*() {
      const looks: Array<number> = []
      const last = yield* Ref.make(0)
      const look = Effect.gen(function*() {
        const now = yield* TestClock.currentTimeMillis
        looks.push(now)
        return Idle.decide(rule, { now, lastActivity: yield* Ref.get(last), pending: false, open: 0 })
      })
      const fiber = yield* Effect.fork(Idle.untilIdle(look))
      yield* TestClock.adjust("30 seconds")
      yield* Ref.set(last, 30_000) // a connection at 30 s
      yield* TestClock.adjust("59 seconds")
      expect(yield* Fiber.poll(fiber)).toMatchObject({ _tag: "None" })
      yield* TestClock.adjust("31 seconds") // 90 s: the first deadline (60 s) saw the activity at 30 s
      expect(yield* Fiber.join(fiber)).toBe(60_000)
      expect(looks).toEqual([0, 60_000, 90_000])
    }))
})
