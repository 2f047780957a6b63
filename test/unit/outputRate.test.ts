/**
 * The output rate of a service, as a pure state machine: at most `rate` lines a second, the pipes paused until the
 * second is over, and one episode from the first pause to 5 s without one (said once at each end, not per second).
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { calmMs, cutAfter, OutputRate, windowMs } from "../../src/observe/outputRate.js"

describe("OutputRate", () => {
  it("allows `rate` lines per second, then none until the second is over", () => {
    const rate = new OutputRate(100)
    expect(rate.allowance(0)).toBe(100)
    rate.take(60)
    expect(rate.allowance(500)).toBe(40)
    rate.take(40)
    expect(rate.allowance(999)).toBe(0)
    expect(rate.resumeAt).toBe(windowMs)
    expect(rate.allowance(1000)).toBe(100)
  })

  it("a new second begins at the first look after the last one ended, not on a fixed grid", () => {
    const rate = new OutputRate(10)
    rate.allowance(0)
    rate.take(10)
    expect(rate.allowance(3500)).toBe(10)
    expect(rate.resumeAt).toBe(4500)
  })

  it("a flood: the first pause begins the episode (said once), the next ones do not; the paused time adds up", () => {
    const rate = new OutputRate(10)
    const began: Array<boolean> = []
    for (let second = 0; second < 5; second++) {
      const now = second * 1000
      expect(rate.allowance(now)).toBe(10)
      rate.take(10)
      began.push(rate.pause(now + 10))
      expect(rate.paused).toBe(true)
      expect(rate.pause(now + 20)).toBe(false) // a second pipe of the same service, paused too
      expect(rate.resume(rate.resumeAt)).toBe(990)
    }
    expect(began).toEqual([true, false, false, false, false])
    expect(rate.settle(4000 + calmMs - 1)).toBeUndefined()
    expect(rate.settle(5000 + calmMs)).toEqual({ lastedMs: 4990, pausedMs: 5 * 990, pauses: 5, lines: 40 })
    expect(rate.calmAt).toBeUndefined()
    // The next flood is a new episode.
    rate.allowance(20_000)
    rate.take(10)
    expect(rate.pause(20_001)).toBe(true)
  })

  it("the episode is not over while paused, nor until calmMs after the last pause ended", () => {
    const rate = new OutputRate(1)
    rate.allowance(0)
    rate.take(1)
    rate.pause(0)
    expect(rate.calmAt).toBe(windowMs + calmMs)
    expect(rate.settle(1_000_000)).toBeUndefined() // still paused
    rate.resume(1000)
    expect(rate.calmAt).toBe(1000 + calmMs)
    expect(rate.settle(1000 + calmMs - 1)).toBeUndefined()
    expect(rate.settle(1000 + calmMs)).toMatchObject({ pausedMs: 1000, pauses: 1, lines: 0 })
  })

  it("bursts a few seconds apart stay one episode", () => {
    const rate = new OutputRate(10)
    let begins = 0
    for (let burst = 0; burst < 4; burst++) {
      const now = burst * 3000
      rate.allowance(now)
      rate.take(10)
      if (rate.pause(now)) begins++
      rate.resume(now + 1000)
      expect(rate.settle(now + 2999)).toBeUndefined()
    }
    expect(begins).toBe(1)
  })

  it("resuming what is not paused counts nothing", () => {
    const rate = new OutputRate(10)
    expect(rate.resume(5)).toBe(0)
    expect(rate.settle(1e9)).toBeUndefined()
  })
})

/** The newlines in bytes. */
const newlines = (bytes: Uint8Array): number => bytes.reduce((n, b) => n + (b === 10 ? 1 : 0), 0)

/** Bytes with many newlines, long runs without any, NULs and bytes that are not UTF-8. */
const chunk = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }),
  fc.array(fc.constantFrom(10, 0, 0xff, 0x61, 0xc3), { maxLength: 2000 }).map((a) => Uint8Array.from(a)),
  fc.nat(5000).map((n) => new Uint8Array(n).fill(10)),
  fc.nat(5000).map((n) => new Uint8Array(n).fill(0x79))
)

describe("cutAfter", () => {
  it("cuts just after the n-th newline (a line after it waits), or takes everything when there are fewer", () => {
    fc.assert(
      fc.property(chunk, fc.nat(3000), (bytes, lines) => {
        const cut = cutAfter(bytes, lines)
        const taken = bytes.subarray(0, cut)
        if (newlines(bytes) < lines) return cut === bytes.length
        return newlines(taken) === lines && (lines === 0 ? cut === 0 : taken[cut - 1] === 10)
      }),
      { numRuns: 500 }
    )
  })

  it("a 64 KiB chunk of `yes` output cut at 10,000 lines", () => {
    const yes = Buffer.alloc(64 * 1024, "y\n")
    expect(cutAfter(yes, 10_000)).toBe(20_000)
    expect(cutAfter(yes, 0)).toBe(0)
  })
})
