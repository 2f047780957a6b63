/**
 * The counting sentinel (os/sentinel.ts) falls back to readability when it cannot run; the fallback says
 * what failed, with the native call and its errno, never "An unknown error occurred in Effect.try" (what soad said
 * when soad held more than 1,020 fds and the sentinel's start failed with EMFILE).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Sentinel from "../../src/os/sentinel.js"
import { helperPath, type Native } from "../../src/os/native.js"
import type { Arrivals, Listener } from "../../src/SocketService.js"
import { captureEvents, nativeError } from "../fakes.js"

const listeners: ReadonlyArray<Listener> = [{ name: "soad", address: { _tag: "Unix", path: "/run/a.sock" }, fd: 10, description: "/run/a.sock" }]
const nobody = { uid: 65534, gid: 65534, groups: [65534] }
const readability = (): Effect.Effect<Arrivals, never, Scope.Scope> =>
  Effect.succeed({ exact: false, latest: Effect.succeed({ at: undefined, rearmed: false }) })

/** The calls the sentinel makes, failing where asked; only these are used, hence the cast. */
const fakeNative = (fail: { readonly memory?: Error; readonly spawn?: Error }): Native =>
  ({
    sentinelMemory: () => {
      if (fail.memory !== undefined) throw fail.memory
      return { id: 1, fd: 99 }
    },
    spawn: () => {
      if (fail.spawn !== undefined) throw fail.spawn
      return 4242
    },
    close: () => {},
    countStop: () => {},
    sentinelFree: () => {}
  }) as unknown as Native

/** The message of the counting_fallback event the sentinel logs with this native binding. */
const fallbackMessage = (n: Native) =>
  Effect.gen(function*() {
    const { events, layer } = captureEvents()
    const arrivals = yield* Sentinel.arrivals(n, listeners, nobody, readability).pipe(Effect.provide(layer))
    expect(arrivals.exact).toBe(false)
    return events.filter((event) => event.name === "counting_fallback").map((event) => event.message)
  })

// helperPath loads the real binding to find soad-sentinel beside it (npm run build).
describe.skipIf(helperPath("soad-sentinel") === undefined)("the counting sentinel's fallback says what failed", () => {
  it.scoped("its start failing with EMFILE: the call and errno", () =>
    Effect.gen(function*() {
      const said = yield* fallbackMessage(fakeNative({ spawn: nativeError("fcntl(F_DUPFD)", 24, "Too many open files") }))
      expect(said).toEqual([
        "the counting sentinel cannot start (fcntl(F_DUPFD): Too many open files): this run's activity is seen through readability"
      ])
    }))

  it.scoped("its shared memory failing: the call and errno", () =>
    Effect.gen(function*() {
      const said = yield* fallbackMessage(fakeNative({ memory: nativeError("memfd_create", 24, "Too many open files") }))
      expect(said).toEqual([
        "no shared memory for the counting sentinel (memfd_create: Too many open files): this run's activity is seen through readability"
      ])
    }))
})
