/**
 * The counting sentinel (os/sentinel.ts) falls back to readability when it cannot run; the fallback says
 * what failed, with the native call and its errno, never "An unknown error occurred in Effect.try" (what soad said
 * when soad held more than 1,020 fds and the sentinel's start failed with EMFILE). What soad reads of a running
 * sentinel: its page (the latest arrival, a listener on the quiet signal for 100 ms after a connection: activity
 * may be now) and the signals waiting in its queue (/proc/PID/status).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import type * as Scope from "effect/Scope"
import * as Sentinel from "../../src/os/sentinel.js"
import { pendingIn, readSentinel } from "../../src/os/sentinel.js"
import { helperPath, type Native } from "../../src/os/native.js"
import type { Arrivals, Listener } from "../../src/SocketService.js"
import { captureEvents, nativeError } from "../../src/testing.js"

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

describe("the latest arrival read from a sentinel's page", () => {
  const pid = 4242
  const signal = 35
  const quiet = 23
  const page = (windows: ReadonlyArray<number>, ago: ReadonlyArray<number>) => ({ windows, ago, armed: 1, signal, quiet })
  const counting = { owner: pid, signal, async: true }
  const now = 100_000

  it("armed listeners: the latest of their arrivals; none yet: undefined", () => {
    const read = page([2, 4], [500, 250.4])
    expect(readSentinel(pid, read, [counting, counting], read, now)).toEqual({ at: now - 251, rearmed: false })
    const none = page([0], [-1])
    expect(readSentinel(pid, none, [counting], none, now)).toEqual({ at: undefined, rearmed: false })
  })

  it("a listener on the quiet signal (odd counter), or one that was between the reads: activity may be now", () => {
    const quietNow = { owner: pid, signal: quiet, async: true }
    expect(readSentinel(pid, page([1], [5000]), [quietNow], page([1], [5000]), now)).toEqual({ at: now, rearmed: false })
    // went quiet and back between the two reads (counter 2 then 4): the owner was read in between
    expect(readSentinel(pid, page([2], [5000]), [quietNow], page([4], [10]), now)).toEqual({ at: now, rearmed: false })
    expect(readSentinel(pid, page([2], [5000]), [counting], page([3], [10]), now)).toEqual({ at: now, rearmed: false })
  })

  it("the quiet signal while no window is open, another signal or owner, O_ASYNC cleared: the app's doing", () => {
    const read = page([2], [10])
    for (
      const disturbed of [
        { owner: pid, signal: quiet, async: true }, // the app set the sentinel's quiet signal itself
        { owner: pid, signal: 9, async: true },
        { owner: 1, signal, async: true },
        { owner: 0, signal, async: true },
        { owner: pid, signal, async: false }
      ]
    ) {
      expect(readSentinel(pid, read, [disturbed], read, now), JSON.stringify(disturbed)).toEqual({ at: undefined, rearmed: true })
    }
  })
})

describe("signals waiting in the sentinel's queue (/proc/PID/status)", () => {
  const status = (shdPnd: string, sigPnd = "0000000000000000", name = "soad-sentinel") =>
    `Name:\t${name}\nUmask:\t0022\nState:\tS (sleeping)\nSigQ:\t0/63484\nSigPnd:\t${sigPnd}\nShdPnd:\t${shdPnd}\n` +
    "SigBlk:\t0000000400012001\nSigIgn:\t0000000000000000\n"
  const counted = [35, 29] // SIGRTMIN+1 (glibc), SIGIO

  it("a pending counting signal or SIGIO, in the process's set or the thread's: true", () => {
    expect(pendingIn(status("0000000400000000"), counted)).toBe(true) // signal 35: bit 34
    expect(pendingIn(status("0000000010000000"), counted)).toBe(true) // SIGIO (29): bit 28
    expect(pendingIn(status("0000000000000000", "0000000400000000"), counted)).toBe(true)
    expect(pendingIn(status("0000000000400001"), counted)).toBe(false) // SIGURG (the quiet one) and SIGHUP
    expect(pendingIn(status("0000000000000000"), counted)).toBe(false)
  })

  it("missing or malformed fields read as pending (never early)", () => {
    expect(pendingIn("", counted)).toBe(true)
    expect(pendingIn(status("zz"), counted)).toBe(true)
    expect(pendingIn(status("1".repeat(33)), counted)).toBe(true)
    expect(pendingIn("Name:\tx\nSigPnd:\t0000000000000000\n", counted)).toBe(true)
  })

  it("a name the app's user set cannot make it say anything: only the fields at the start of a line count", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 64 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (name, mask) => {
        // the kernel escapes a newline in the name; so does the test
        const escaped = name.replaceAll("\n", "\\n")
        const hex = mask.toString(16).padStart(16, "0")
        const expected = counted.some((signal) => ((mask >> BigInt(signal - 1)) & 1n) === 1n)
        expect(pendingIn(status(hex, "0000000000000000", `${escaped} ShdPnd:\tffffffffffffffff`), counted)).toBe(expected)
      })
    )
  })

  it("a long name line (each line is looked at once, its rest never searched)", () => {
    expect(pendingIn(status("0000000000000000", "0000000000000000", "ShdPnd:".repeat(100_000)), counted)).toBe(false)
  })
})
