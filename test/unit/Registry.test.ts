/**
 * Registry.statusesOf: every service's status in registration order, read at once where a handle can
 * (`statusAt`) and through its `status` effect where it cannot, all at one Clock time.
 */
import { expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as Registry from "../../src/Registry.js"
import { stoppedStatus } from "./statuses.js"

/** A handle whose status is read at once (`sync`) or only through its effect, counting how it was read. */
const handle = (name: string, sync: boolean, reads: Array<string>): Registry.Handle => ({
  name,
  status: Effect.sync(() => {
    reads.push(`${name}: effect`)
    return stoppedStatus(name, { state: "running" })
  }),
  ...(sync
    ? {
      statusAt: (now: number) => {
        reads.push(`${name}: at ${now}`)
        return stoppedStatus(name)
      }
    }
    : {}),
  wake: Effect.succeed("starting"),
  sleep: Effect.succeed("not running")
})

it.effect("statusesOf reads each status at once where it can, through its effect where not, in order, at one time", () =>
  Effect.gen(function*() {
    yield* TestClock.adjust("1234 millis")
    const reads: Array<string> = []
    const handles = [handle("a", true, reads), handle("b", false, reads), handle("c", true, reads), handle("d", false, reads)]
    const statuses = yield* Registry.statusesOf(handles)
    expect(statuses.map((status) => `${status.name} ${status.state}`)).toEqual(["a stopped", "b running", "c stopped", "d running"])
    expect(reads).toEqual(["a: at 1234", "c: at 1234", "b: effect", "d: effect"])
  }))

it.effect("statusesOf of handles that all read at once runs no effect of theirs; of none, is empty", () =>
  Effect.gen(function*() {
    const reads: Array<string> = []
    const statuses = yield* Registry.statusesOf([handle("a", true, reads), handle("b", true, reads)])
    expect(statuses.map((status) => status.name)).toEqual(["a", "b"])
    expect(reads).toEqual(["a: at 0", "b: at 0"])
    expect(yield* Registry.statusesOf([])).toEqual([])
  }))
