/** The memory account behind PEAK and SAVED: pure, so each rule is checked with exact numbers. */
import { describe, expect, it } from "vitest"
import * as Saving from "../../src/os/saving.js"

describe("the memory account", () => {
  it("saves nothing before the app has run and been sampled: an unknown peak saves nothing we can measure", () => {
    const account = Saving.stopped(Saving.started(Saving.empty, 0), 1000)
    expect(Saving.savedAt(account, 10_000)).toBe(0)
    expect(Saving.peak(account, false)).toBeUndefined()
  })

  it("a run's peak is its largest sample; each stopped ms then saves that peak, until the next start", () => {
    let account = Saving.started(Saving.empty, 0)
    account = Saving.sampled(Saving.sampled(Saving.sampled(account, 30e6), 50e6), 40e6)
    expect(Saving.peak(account, true)).toBe(50e6)
    account = Saving.stopped(account, 1000)
    expect(Saving.peak(account, false)).toBe(50e6)
    expect(Saving.savedAt(account, 3000)).toBe(50e6 * 2000)
    account = Saving.started(account, 5000) // stopped for 4 s
    expect(Saving.savedAt(account, 99_000)).toBe(50e6 * 4000) // nothing accrues while it runs
    expect(Saving.peak(account, true)).toBe(50e6) // the latest run's, until this one is sampled
    account = Saving.stopped(Saving.sampled(account, 20e6), 6000)
    expect(Saving.savedAt(account, 7000)).toBe(50e6 * 4000 + 20e6 * 1000) // the newest run's peak from now on
  })

  it("a run stopped before any sample keeps the previous run's peak", () => {
    let account = Saving.stopped(Saving.sampled(Saving.started(Saving.empty, 0), 10e6), 100)
    account = Saving.stopped(Saving.started(account, 200), 300)
    expect(Saving.peak(account, false)).toBe(10e6)
    expect(Saving.savedAt(account, 400)).toBe(10e6 * 100 + 10e6 * 100)
  })
})
