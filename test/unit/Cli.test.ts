/**
 * The pure parts of the command line: argv split at `--` (the app's command never parsed), attached values,
 * soad's --log-level kept from @effect/cli's built-in one, the library's errors in soad's words, plain help.
 */
import { describe, expect, it } from "vitest"
import * as Cli from "../../src/cli/command.js"

describe("splitArgv", () => {
  it("keeps everything after the first -- verbatim, flags and subcommand names included", () => {
    expect(Cli.splitArgv(["-s", "/a.sock", "--", "sleep", "30", "--log-level", "x", "--", "-t5"])).toEqual({
      own: ["-s", "/a.sock"],
      command: ["sleep", "30", "--log-level", "x", "--", "-t5"]
    })
    expect(Cli.splitArgv(["status"]).command).toBeUndefined()
  })

  it("separates attached values: -t5, -S15, --socket=PATH", () => {
    expect(Cli.splitArgv(["-t5", "-S15", "--socket=/a=b.sock", "-s/x.sock", "-c", "f"]).own).toEqual([
      "-t", "5", "-S", "15", "--socket", "/a=b.sock", "-s", "/x.sock", "-c", "f"
    ])
  })

  it("moves a leading --log-level after the other options, where the built-in one cannot take it", () => {
    expect(Cli.splitArgv(["--log-level", "debug", "-s", "/a.sock", "--", "app"]).own).toEqual([
      "-s", "/a.sock", "--log-level", "debug"
    ])
    expect(Cli.splitArgv(["--log-level=error", "-s", "/a.sock"]).own).toEqual(["-s", "/a.sock", "--log-level", "error"])
  })
})

describe("explain: @effect/cli's errors in soad's words", () => {
  it("names the flag and the value of a bad choice", () => {
    expect(Cli.explain("Expected one of the following cases: quiet, error, warn, info, debug", ["--log-level", "loud"])).toBe(
      "--log-level: 'loud' is not one of quiet, error, warn, info, debug"
    )
  })

  it("a missing value names the flag as typed", () => {
    expect(Cli.explain("Expected a value following option: '--time-until-stop'", ["-s", "x", "-t"])).toBe(
      "option -t needs a value"
    )
  })

  it("leaves other messages as they are", () => {
    expect(Cli.explain("Missing argument <FILE>", [])).toBe("Missing argument <FILE>")
  })
})

describe("helpText", () => {
  const raw = "\x1b[1m(-c, --config FILE)\x1b[0m\n\n  A user-defined piece of text.\n\n  Run every service.\n"
  it("drops the library's placeholder, and the colours when plain", () => {
    expect(Cli.helpText(raw, true)).toBe("(-c, --config FILE)\n\n  Run every service.\n")
    expect(Cli.helpText(raw, false)).toBe("\x1b[1m(-c, --config FILE)\x1b[0m\n\n  Run every service.\n")
  })
})
