/**
 * Exec failures are reported as such: the app that cannot start is a failed start with a message naming what is
 * missing (never an app that "exited with code 127"), soad keeps its socket and backs off.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { soad, tempDirs } from "../harness.js"

const dir = tempDirs()

/** Starts soad with this command, pokes it with a connection, and returns the failure line. */
const failure = async (d: string, command: ReadonlyArray<string>, extra: ReadonlyArray<string> = []) => {
  const socketPath = Path.join(d, "app.sock")
  const s = soad(["-s", socketPath, ...extra, "--", ...command])
  await s.waitFor(/listening on/)
  const client = Net.connect(socketPath).on("error", () => {})
  const line = await s.waitFor(/cannot start the app/)
  await s.waitFor(/failing: next try in/)
  client.destroy()
  expect(s.count(/exited/)).toBe(0) // no "app exited (code 127)": it never ran
  expect(Fs.existsSync(socketPath)).toBe(true)
  s.process.kill("SIGTERM")
  expect(await s.exited).toBe(0)
  return line
}

describe("exec failures", () => {
  it("fault: the command does not exist; promise: a failed start naming it", async () => {
    expect(await failure(dir(), ["no-such-command-here"])).toContain("command not found: 'no-such-command-here'")
  })

  it("fault: the command is a directory; promise: a failed start saying it is not executable", async () => {
    const d = dir()
    expect(await failure(d, [d])).toContain(`'${d}' is not executable`)
  })

  it("fault: a script without a #! line; promise: a failed start that says so", async () => {
    const d = dir()
    const script = Path.join(d, "script")
    Fs.writeFileSync(script, "echo hello\n", { mode: 0o755 })
    expect(await failure(d, [script])).toContain(`'${script}' is not a program this system can run (a script needs a #! line)`)
  })

  it("fault: a script whose #! interpreter is missing; promise: the message names the interpreter, not the script", async () => {
    const d = dir()
    const script = Path.join(d, "script")
    Fs.writeFileSync(script, "#!/nonexistent/python9\nprint(1)\n", { mode: 0o755 })
    expect(await failure(d, [script])).toContain(`'${script}' exists, but its interpreter /nonexistent/python9 (its #! line) does not`)
  })

  it("fault: the working directory is missing; promise: the message names it", async () => {
    const d = dir()
    const config = Path.join(d, "apps.toml")
    Fs.writeFileSync(config, `[services.a]\nlisten = ["${d}/app.sock"]\ncommand = ["true"]\ncwd = "${d}/gone"\n`)
    const s = soad(["-c", config])
    await s.waitFor(/listening on/)
    const client = Net.connect(Path.join(d, "app.sock")).on("error", () => {})
    expect(await s.waitFor(/cannot start the app/)).toContain(`the working directory ${d}/gone does not exist`)
    client.destroy()
    expect(s.count(/exited/)).toBe(0)
  })
})
