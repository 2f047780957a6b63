/**
 * Fault: a duration that rounds to nothing (a crashing app restarted in a busy loop) or that no timer can hold
 * (a timer that fires at once). Promise: flags and config-file keys refuse both, by the same rule, with a line that
 * says the bounds; 0 stays allowed where it means something.
 */
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appCommand, soad, soadRun, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()
const bounds = /from 0\.001 \(1 ms\) to 2147483\.647 \(about 24\.8 days\)/

describe("a duration that rounds to nothing or that no timer holds is refused", () => {
  it.each([
    ["--max-backoff", "0.0001"],
    ["-t", "0.0004"],
    ["--stop-timeout", "0.0004"],
    ["-t", "2147483.648"],
    ["--start-timeout", "1e10"]
  ])("flag %s %s: usage error, exit 2, one line naming the flag and the bounds", (flag, value) => {
    const result = soadRun(["-s", Path.join(dir(), "a.sock"), flag, value, "--", "app"])
    const lines = result.stderr.trim().split("\n")
    expect(lines, result.stderr).toHaveLength(1)
    expect(lines[0]).toContain(`soad: ${flag}: '${value}' is not a`)
    expect(lines[0]).toMatch(bounds)
    expect(result.code).toBe(2)
  })

  it.each([
    ["max-backoff", "0"],
    ["start-timeout", "0"],
    ["max-backoff", "0.0001"],
    ["time-until-stop", "3000000"]
  ])("config key %s = %s: the file is refused (exit 1), the line names the key and the bounds", (key, value) => {
    const d = dir()
    const path = writeConfig(d, `[services.a]\nlisten = ["${Path.join(d, "a.sock")}"]\ncommand = [${appCommand}]\n${key} = ${value}\n`)
    const result = soadRun(["check", path])
    const lines = result.stderr.trim().split("\n")
    expect(lines, result.stderr).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^soad: ${path}: services\\.a\\.${key}: expected a .*, found ${value}$`))
    expect(lines[0]).toMatch(bounds)
    expect(result.code).toBe(1)
  })

  it("min-warm = 1e10 at the top level is refused the same way", () => {
    const d = dir()
    const path = writeConfig(d, `min-warm = 1e10\n[services.a]\nlisten = ["${Path.join(d, "a.sock")}"]\ncommand = [${appCommand}]\n`)
    const result = soadRun(["check", path])
    expect(result.stderr.trim()).toMatch(new RegExp(`^soad: ${path}: min-warm: expected a non-negative number of seconds`))
    expect(result.code).toBe(1)
  })
})

describe("durations within the bounds still work, each way", () => {
  it("flags: -t at the largest timer, --max-backoff 1 ms, --stop-timeout 0 and --min-uptime 0 start soad", async () => {
    const d = dir()
    const s = soad([
      "-s", Path.join(d, "a.sock"), "-t", "2147483.647", "--max-backoff", "0.001", "--stop-timeout", "0", "--min-uptime", "0",
      "--", "app"
    ])
    await s.waitFor(/listening on/)
  })

  it("keys: stop-timeout = 0, min-uptime = 0, min-warm = 0, max-backoff = 0.001 and time-until-stop at the bound pass", () => {
    const d = dir()
    const path = writeConfig(
      d,
      `min-warm = 0\n[services.a]\nlisten = ["${Path.join(d, "a.sock")}"]\ncommand = [${appCommand}]\n` +
        `stop-timeout = 0\nmin-uptime = 0\nmax-backoff = 0.001\ntime-until-stop = 2147483.647\n`
    )
    const result = soadRun(["check", path])
    expect(result.stderr).toBe("")
    expect(result.stdout).toMatch(/OK$/m)
    expect(result.code).toBe(0)
  })
})
