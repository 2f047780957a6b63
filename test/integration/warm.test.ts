/**
 * The warm path with real sockets: while an app runs, soad sees every connection to its listeners (also those the
 * app accepts at once) without waking for each one. After a connection's signal a listener is disarmed for 100 ms
 * and the moment it is armed again counts as its latest arrival (src/native/count.c); whatever the timing, soad's
 * latest activity is never earlier than the latest connection. (How late it is at most, and what soad costs under
 * load, are benchmark figures: `BENCH_ONLY=warm,precision npm run bench`.)
 */
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appFixture, eventually, get, sleep, soad, tempDirs } from "../harness.js"
import { connectInTurn, connectionPatterns, contextSwitches, idleMillis } from "../warm.js"

const dir = tempDirs()

describe("the warm path: every connection counts, without a wake per connection", () => {
  it("connections the app accepts at once, in a burst and one by one: soad's idle time never exceeds the time since the latest", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const control = Path.join(d, "control.sock")
    const s = soad(["-s", socketPath, "-t", "60", "--control", control, "--", "node", appFixture])
    await s.waitFor(/listening on/)
    await get({ socketPath }) // starts the app; it accepts each connection at once from now on
    await eventually(() => s.count(/app started/) === 1, 15_000, "the app")
    for (const [what, connect] of connectionPatterns(socketPath)) {
      const began = await connect()
      const idle = await idleMillis(control, "node")
      // 1 ms: soad's clock and the test's are both Date.now(), read in whole milliseconds
      expect(idle, what).toBeLessThanOrEqual(Date.now() - began + 1)
    }
    expect(s.count(/stopping the app/)).toBe(0)
  })

  it("a run of connections one after another wakes soad a few times a second, not once per connection", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const s = soad(["-s", socketPath, "-t", "60", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    await get({ socketPath })
    await sleep(2000) // soad's start-up work (its settling GC) is over
    const connections = 400
    const before = contextSwitches(s.pid)
    const seconds = await connectInTurn(socketPath, connections)
    const switches = contextSwitches(s.pid) - before
    // A signal per connection woke soad once per connection (measured: 400 to 600 for 400). Now: a signal and two
    // wakes of its loop per 100 ms, about 20 a second, and some for its own timers: under half of them here.
    expect(switches, `${switches} context switches of soad's threads for ${connections} connections in ${seconds} s`)
      .toBeLessThan(connections / 2)
    expect(s.count(/stopping the app/)).toBe(0)
  })
})
