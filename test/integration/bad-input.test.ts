/**
 * Bad input: one clear line, a non-zero exit (2 for usage), nothing deleted, nothing left running.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appFixture, bin, root, soad, soadRun, tempDirs } from "../harness.js"

const dir = tempDirs()

/** The run failed with this exit code and exactly one line on stderr matching `pattern`. */
const expectOneLine = (result: ReturnType<typeof soadRun>, code: number, pattern: RegExp) => {
  const lines = result.stderr.trim().split("\n")
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(/^soad: /)
  expect(lines[0]).toMatch(pattern)
  expect(result.code).toBe(code)
}

/**
 * Runs soad until it says it listens (however long a busy machine makes that), then stops it: what it printed.
 * (A fixed time to start was a flaky margin: 1.57 s once, against 1.5 s given.)
 */
const untilListening = async (args: ReadonlyArray<string>): Promise<{ readonly stderr: string }> => {
  const s = soad(args)
  await s.waitFor(/listening on|^soad: /m, 15_000).catch(() => undefined)
  s.process.kill("SIGTERM")
  await s.exited
  return { stderr: s.output() }
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

  it("a stale socket file (nobody listening) is replaced", async () => {
    const d = dir()
    const path = Path.join(d, "stale.sock")
    // A socket file whose listener is gone: made by a process that exits without removing it.
    ChildProcess.execFileSync(process.execPath, [
      "-e",
      `const s = require("net").createServer(); s.listen(${JSON.stringify(path)}, () => process.exit(0))`
    ])
    expect(Fs.statSync(path).isSocket()).toBe(true)
    const result = await untilListening(["-s", path, "-t", "1", "--", "app"])
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

  it("--help is plain text when stdout is no terminal: no colours, no placeholder, subcommands and examples listed", () => {
    const result = soadRun(["--help"])
    expect(result.code).toBe(0)
    expect(result.stdout).not.toContain("\x1b[")
    // none of the library's boilerplate lines, which say nothing our descriptions do not
    for (const boilerplate of ["A user-defined piece of text", "A file.", "An integer.", "A true or false value", "This setting is optional", "may be repeated zero or more times", "One of the following"]) {
      expect(result.stdout).not.toContain(boilerplate)
    }
    expect(result.stdout).toMatch(/^COMMANDS$/m)
    const which = "[--control PATH] [--name INSTANCE] [(-c, --config FILE)]"
    for (const command of [
      "check <FILE>", `status [--json] [--all] ${which} <NAME>...`, `wake ${which} <NAME>`, `start ${which} <NAME>`,
      `sleep ${which} <NAME>`, `stop ${which} <NAME>`, `restart ${which} <NAME>`, `reload ${which}`,
      `logs [(-n, --lines N)] [(-f, --follow)] ${which} [<NAME>]`
    ]) {
      expect(result.stdout).toContain(`- ${command}`)
    }
    expect(result.stdout).toMatch(/^EXAMPLES$/m)
    expect(result.stdout).toContain("soad -s /run/app.sock -t 240 -S TERM -- gunicorn app:app")
    expect(result.stdout).toMatch(/seconds \(90, 0\.5\) or with units \(90s, 5m, 1h30m, 250ms\)/)
  })

  it("--help on a terminal has colours, unless NO_COLOR is set", () => {
    // script(1) gives soad a terminal as stdout.
    const onTerminal = (env: NodeJS.ProcessEnv) =>
      ChildProcess.spawnSync("script", ["-qec", `${process.execPath} ${bin} --help`, "/dev/null"], { encoding: "utf8", env, cwd: root })
    const { NO_COLOR: _, ...withoutNoColor } = process.env
    const coloured = onTerminal(withoutNoColor)
    expect(coloured.status).toBe(0)
    expect(coloured.stdout).toContain("\x1b[")
    const plain = onTerminal({ ...withoutNoColor, NO_COLOR: "1" })
    expect(plain.status).toBe(0)
    expect(plain.stdout).toContain("--time-until-stop")
    expect(plain.stdout).not.toContain("\x1b[")
    expect(plain.stdout).not.toContain("A user-defined piece of text")
  })

  it("help of a subcommand: its usage after soad, without soad's examples", () => {
    const result = soadRun(["status", "--help"])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("--json")
    expect(result.stdout).toMatch(/^\$ soad status \[--json\]/m)
    expect(result.stdout).not.toMatch(/^EXAMPLES$/m)
    expect(result.stdout).not.toContain("A user-defined piece of text")
  })

  it.each([["first", true], ["last", false]])("--log-level debug works %s on the line", async (_, first) => {
    // The library's built-in --log-level takes the option when it comes first, and soad would log at info.
    const d = dir()
    const own = ["-s", Path.join(d, "a.sock"), "--control", Path.join(d, "control.sock")]
    const s = soad([...(first ? ["--log-level", "debug", ...own] : [...own, "--log-level", "debug"]), "--", "node", appFixture])
    await s.waitFor(/control socket: /, 15_000)
  })

  it("--completions bash names soad's options, subcommands and levels, and is valid bash", () => {
    const result = soadRun(["--completions", "bash"])
    expect(result.code).toBe(0)
    for (const word of ["--time-until-stop", "--socket", "--shutdown-signal", "--upstream", "check", "status", "wake", "sleep"]) {
      expect(result.stdout).toContain(word)
    }
    expect(result.stdout).toContain(`compgen -W "quiet error warn info debug"`)
    expect(result.stdout).toMatch(/^complete -F _soad_bash_completions .* soad$/m)
    const syntax = ChildProcess.spawnSync("bash", ["-n"], { input: result.stdout, encoding: "utf8" })
    expect(syntax.status, syntax.stderr).toBe(0)
    const completed = ChildProcess.spawnSync("bash", ["-c", `${result.stdout}\nCOMP_WORDS=(soad --time); COMP_CWORD=1; _soad_bash_completions soad; echo "\${COMPREPLY[@]}"`], { encoding: "utf8" })
    expect(completed.stdout.trim()).toBe("--time-until-stop")
  })

  it.each([["zsh", "'--socket["], ["fish", "-l socket"]])("--completions %s names soad's options, not the built-in log levels", (shell, option) => {
    const result = soadRun(["--completions", shell])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(option)
    expect(result.stdout).not.toContain("Sets the minimum log level")
  })

  it("-t takes units: -t 5m, -t1h30m; and refuses what is no duration", async () => {
    for (const flags of [["-t", "5m"], ["-t1h30m"], ["--time-until-stop=250ms"]]) {
      const result = await untilListening(["-s", Path.join(dir(), "a.sock"), ...flags, "--", "app"])
      expect(result.stderr, flags.join(" ")).toMatch(/listening on .*a\.sock/)
      expect(result.stderr).not.toMatch(/soad: /)
    }
    const bad = soadRun(["-s", Path.join(dir(), "a.sock"), "-t", "5 minutes", "--", "app"])
    expectOneLine(bad, 2, /-t: '5 minutes' is not a positive number of seconds or a duration such as 90s, 5m, 1h30m, 250ms/)
  })

  it("a subcommand's name before -- is refused, after -- it is the app", async () => {
    const path = Path.join(dir(), "a.sock")
    expectOneLine(soadRun(["-s", path, "sleep", "30"]), 2, /'sleep' is a subcommand of soad: to run it as the app, give it after --/)
    const result = await untilListening(["-s", path, "-t", "1", "--", "sleep", "30"])
    expect(result.stderr).toMatch(/listening on .*a\.sock/)
    expect(result.stderr).not.toMatch(/soad: /)
  })

  it("--version prints the version", () => {
    const result = soadRun(["--version"])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
  })

  it("accepts --socket=PATH and -t5, and passes flags after -- to the app untouched", async () => {
    const d = dir()
    const path = Path.join(d, "a.sock")
    const result = await untilListening([`--socket=${path}`, "-t5", "-S15", "--", "app", "--socket=x", "-t", "--help"])
    expect(result.stderr).toMatch(/listening on .*a\.sock/)
    expect(result.stderr).not.toMatch(/soad: /)
  })
})
