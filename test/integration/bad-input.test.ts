/**
 * Bad input: one clear line, a non-zero exit (2 for usage), nothing deleted, nothing left running.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { bin, root, soadRun, tempDirs } from "../harness.js"

const dir = tempDirs()

/** The run failed with this exit code and exactly one line on stderr matching `pattern`. */
const expectOneLine = (result: ReturnType<typeof soadRun>, code: number, pattern: RegExp) => {
  const lines = result.stderr.trim().split("\n")
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(/^soad: /)
  expect(lines[0]).toMatch(pattern)
  expect(result.code).toBe(code)
}

describe("usage errors exit 2 with one line", () => {
  const sock = () => Path.join(dir(), "a.sock")
  it.each([
    [["-s", "SOCK"], /no command: give the app to run after --/],
    [["-s", "SOCK", "--"], /no command/],
    [["--", "app"], /no socket: give one with -s PATH or -l ADDR/],
    [["-s", "SOCK", "-t", "0", "--", "app"], /-t: '0' is not a positive number of seconds/],
    [["-s", "SOCK", "-t", "abc", "--", "app"], /-t: 'abc' is not a positive number of seconds/],
    [["-s", "SOCK", "-t", "-5", "--", "app"], /-t: '-5' is not a positive number/],
    [["-s", "SOCK", "-S", "FOO", "--", "app"], /-S: unknown signal 'FOO'/],
    [["-s", "SOCK", "-S", "99", "--", "app"], /-S: unknown signal number 99/],
    [["-s", "SOCK", "--stop-timeout", "x", "--", "app"], /--stop-timeout: 'x' is not a non-negative number/],
    [["--bogus", "-s", "SOCK", "--", "app"], /unknown option '--bogus'/],
    [["-s", "SOCK", "extra", "--", "app"], /unexpected argument 'extra' before --/],
    [["-s", "SOCK", "-t"], /option -t needs a value/],
    [["-l", "not an address", "--", "app"], /-l: 'not an address' is not an address/],
    [["-s", "SOCK", "--log-level", "loud", "--", "app"], /--log-level: 'loud' is not one of quiet, error, warn, info, debug/]
  ])("%j", (args, pattern) => {
    const path = sock()
    const result = soadRun(args.map((arg) => (arg === "SOCK" ? path : arg)))
    expectOneLine(result, 2, pattern)
    expect(Fs.existsSync(path)).toBe(false)
  })

  it("a socket path longer than the platform allows", () => {
    const path = Path.join(dir(), "x".repeat(120) + ".sock")
    expectOneLine(soadRun(["-s", path, "--", "app"]), 2, /is \d+ bytes long; a UNIX socket path may have at most 107/)
  })
})

describe("listener errors exit 1 and touch nothing", () => {
  it("a path that exists and is not a socket is left alone", () => {
    const path = Path.join(dir(), "data.txt")
    Fs.writeFileSync(path, "precious")
    expectOneLine(soadRun(["-s", path, "--", "app"]), 1, /exists and is not a socket; soad will not replace it/)
    expect(Fs.readFileSync(path, "utf8")).toBe("precious")
  })

  it("a directory is left alone", () => {
    const path = Path.join(dir(), "sub")
    Fs.mkdirSync(path)
    expectOneLine(soadRun(["-s", path, "--", "app"]), 1, /exists and is not a socket/)
    expect(Fs.statSync(path).isDirectory()).toBe(true)
  })

  it("a socket another process listens on is refused, and that process keeps it", async () => {
    const path = Path.join(dir(), "busy.sock")
    const server = Net.createServer((connection) => connection.on("error", () => {}).end("still mine\n"))
    await new Promise<void>((resolve) => server.listen(path, resolve))
    try {
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = ChildProcess.spawn(process.execPath, [bin, "-s", path, "--", "app"], { cwd: root })
        let stderr = ""
        child.stderr.on("data", (chunk) => (stderr += chunk))
        child.on("exit", (code) => resolve({ code, stderr }))
      })
      expectOneLine({ ...result, stdout: "" }, 1, /another process is listening on it/)
      const answer = await new Promise<string>((resolve, reject) => {
        let data = ""
        Net.connect(path).on("data", (chunk) => (data += chunk)).on("end", () => resolve(data)).on("error", reject)
      })
      expect(answer).toBe("still mine\n")
    } finally {
      server.close()
    }
  })

  it("a stale socket file (nobody listening) is replaced", () => {
    const d = dir()
    const path = Path.join(d, "stale.sock")
    // A socket file whose listener is gone: made by a process that exits without removing it.
    ChildProcess.execFileSync(process.execPath, [
      "-e",
      `const s = require("net").createServer(); s.listen(${JSON.stringify(path)}, () => process.exit(0))`
    ])
    expect(Fs.statSync(path).isSocket()).toBe(true)
    const result = soadRun(["-s", path, "-t", "1", "--", "app"], { timeoutMs: 1500 })
    expect(result.stderr).toMatch(/listening on/)
  })

  it("a directory that does not exist", () => {
    const path = Path.join(dir(), "missing", "a.sock")
    expectOneLine(soadRun(["-s", path, "--", "app"]), 1, /the directory .*missing does not exist: create it first/)
  })

  it("a directory soad may not write to", () => {
    const d = dir()
    Fs.chmodSync(d, 0o755) // root's; soad runs as nobody below
    const path = Path.join(d, "a.sock")
    const result = ChildProcess.spawnSync(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, bin, "-s", path, "--", "app"],
      { encoding: "utf8", cwd: "/" }
    )
    expectOneLine({ code: result.status, stderr: result.stderr, stdout: "" }, 1, /permission denied: soad cannot create a socket in/)
    expect(Fs.existsSync(path)).toBe(false)
  })
})

describe("the command line", () => {
  it("--help shows every flag with its default", () => {
    const result = soadRun(["--help"])
    expect(result.code).toBe(0)
    for (const flag of ["--socket", "--listen", "--time-until-stop", "--shutdown-signal", "--stop-timeout", "--log-level", "--backlog"]) {
      expect(result.stdout).toContain(flag)
    }
    expect(result.stdout).toMatch(/Default: 60/)
    expect(result.stdout).toMatch(/Default: TERM/)
    expect(result.stdout).toMatch(/Default: 30/)
  })

  it("--version prints the version", () => {
    const result = soadRun(["--version"])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
  })

  it("accepts --socket=PATH and -t5, and passes flags after -- to the app untouched", () => {
    const d = dir()
    const path = Path.join(d, "a.sock")
    const result = soadRun([`--socket=${path}`, "-t5", "-S15", "--", "app", "--socket=x", "-t", "--help"], { timeoutMs: 1500 })
    expect(result.stderr).toMatch(/listening on .*a\.sock/)
    expect(result.stderr).not.toMatch(/soad: /)
  })
})
