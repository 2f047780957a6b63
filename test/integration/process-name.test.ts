/**
 * soad is `soad` to the tools a sysadmin types: ps, top (the process name), pidof and pgrep; its helpers keep their
 * own names, so `pkill -x soad` or `kill -HUP $(pidof soad)` reach soad alone.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appCommand, soad, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()
const run = (command: string, args: ReadonlyArray<string>) => ChildProcess.spawnSync(command, args, { encoding: "utf8" }).stdout.trim()

describe.runIf(process.platform === "linux")("the process name", () => {
  it("ps, pidof and pgrep know soad as soad, with its arguments in the command line; the pid they give takes SIGHUP as a reload", async () => {
    const d = dir()
    const path = writeConfig(d, `[services.a]\nlisten = [${JSON.stringify(Path.join(d, "a.sock"))}]\ncommand = [${appCommand}]\n`)
    const s = soad(["-c", path, "--control", Path.join(d, "control.sock"), "--log-format", "json"])
    await s.waitFor(/"event":"listening"/)
    expect(Fs.readFileSync(`/proc/${s.pid}/comm`, "utf8").trim()).toBe("soad")
    expect(Fs.readFileSync(`/proc/${s.pid}/cmdline`, "utf8").replace(/[\0 ]+$/, "")).toBe(
      `soad -c ${path} --control ${Path.join(d, "control.sock")} --log-format json`
    )
    expect(run("pidof", ["soad"]).split(" ")).toContain(String(s.pid))
    expect(run("pgrep", ["-x", "soad"]).split("\n")).toContain(String(s.pid))
    // The guard is not soad: a pkill -x soad or pidof soad never reaches it.
    const guard = /"guard_pid":(\d+)/.exec(s.output())?.[1]
    if (guard !== undefined) {
      expect(Fs.readFileSync(`/proc/${guard}/comm`, "utf8").trim()).toBe("soad-guard")
      expect(run("pidof", ["soad"]).split(" ")).not.toContain(guard)
    }
    // The README's reload: kill -HUP $(pidof soad), this soad's pid among them.
    process.kill(Number(s.pid), "SIGHUP")
    await s.waitFor(/"event":"reloaded"/)
  })
})
