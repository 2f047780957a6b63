/**
 * Fault: a storm of SIGHUPs (a configuration tool that reloads once per file it writes, a loop gone wrong) at a
 * soad with many services. Promise: reloads coalesce, a burst costs at most two reloads, and afterwards every
 * service answers with the file's settings as they are after the burst.
 */
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appCommand, eventually, get, sleep, soad, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()
const count = 300

/** The config: `count` services on sockets in `d`; service i listens on s{i}`suffix`.sock. */
const config = (d: string, suffix: string) =>
  Array.from({ length: count }, (_, i) =>
    `[services.s${i}]\nlisten = [${JSON.stringify(Path.join(d, `s${i}${suffix}.sock`))}]\ncommand = [${appCommand}]\n` +
    `time-until-stop = 60\n`).join("\n")

/** The time a log line was written (soad's ISO timestamp), in epoch ms. */
const at = (line: string): number => Date.parse(line.slice(0, line.indexOf(" ")))

describe("a storm of reloads", () => {
  it(`30 SIGHUPs 10 ms apart to a soad of ${count} services: no backlog (at most two reloads begin after the last), then every service as the file says`, async () => {
    const d = dir()
    const path = writeConfig(d, config(d, "-a"))
    const s = soad(["-c", path, "--control", Path.join(d, "control.sock")])
    await eventually(() => s.count(/listening on /) === count, 30_000, "every service listening")

    writeConfig(d, config(d, "-b")) // every service moves to another socket
    // Each signal on its own (10 ms apart, so the kernel does not merge them): Node dispatches each in its own
    // callback, which is what made every signal a reload of its own.
    for (let i = 0; i < 30; i++) {
      s.process.kill("SIGHUP")
      await sleep(10)
    }
    const last = Date.now()
    await s.waitFor(/reloaded .*: 300 restarted \(listen changed\)/, 60_000)
    await eventually(() => s.count(/reloading .* \(SIGHUP or soad reload\)/) === s.count(/reloaded |reload_failed/), 60_000, "the reloads to end")
    await sleep(2_000) // a reload still to come would have begun by now
    const begun = s.lines.filter((line) => /reloading .* \(SIGHUP or soad reload\)/.test(line))
    expect(begun.filter((line) => at(line) > last).length).toBeLessThanOrEqual(2)
    expect(s.count(/reload_failed|config_error/)).toBe(0)

    for (const i of [0, 150, 299]) {
      const answer = await get({ socketPath: Path.join(d, `s${i}-b.sock`) })
      expect(answer.name).toBe("soad")
    }
  }, 120_000)
})
