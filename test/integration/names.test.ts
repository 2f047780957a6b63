/**
 * One name per service: `--name` names a single app's service everywhere (its log lines, its output's prefix,
 * the journal's SYSLOG_IDENTIFIER, status, metrics), and in config mode every line about a service carries it.
 */
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appCommand, appFixture, get, soad, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()
const events = (output: string) =>
  output.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>)

describe("one name per service", () => {
  it("--name blog: every event and the app's own lines are blog's, not the command's", async () => {
    const d = dir()
    const socketPath = Path.join(d, "a.sock")
    const s = soad(["--name", "blog", "--control", Path.join(d, "c.sock"), "--log-format", "json", "-s", socketPath, "--", process.execPath, appFixture, "--ignore-term"])
    await s.waitFor(/"event":"listening"/)
    await get({ socketPath })
    await s.waitFor(/"event":"ready"/)
    s.process.kill("SIGTERM")
    await s.waitFor(/ignoring SIGTERM/)
    const all = events(s.output())
    const about = all.filter((e) => e.event === "listening" || e.event === "started" || e.event === "ready" || e.event === "output")
    expect(about.length).toBeGreaterThanOrEqual(4)
    for (const e of about) expect(e.service).toBe("blog")
  })

  it("config mode: listening and closed lines carry the service", async () => {
    const d = dir()
    const service = (name: string) => `[services.${name}]\nlisten = [${JSON.stringify(Path.join(d, `${name}.sock`))}]\ncommand = [${appCommand}]\n`
    const path = writeConfig(d, service("a") + service("b"))
    const s = soad(["-c", path, "--control", Path.join(d, "c.sock"), "--log-format", "json"])
    await s.waitFor(/"event":"listening".*b\.sock/)
    writeConfig(d, service("a"))
    s.process.kill("SIGHUP")
    await s.waitFor(/"event":"closed"/)
    const all = events(s.output())
    expect(all.filter((e) => e.event === "listening").map((e) => e.service).sort()).toEqual(["a", "b"])
    expect(all.filter((e) => e.event === "closed").map((e) => e.service)).toEqual(["b"])
  })
})
