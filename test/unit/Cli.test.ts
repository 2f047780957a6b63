/**
 * The pure parts of the command line: argv split at `--` (the app's command never parsed), attached values,
 * soad's --log-level kept from @effect/cli's built-in one, the library's errors in soad's words, plain help.
 */
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { describe, expect, it } from "vitest"
import type * as ControlArgs from "../../src/cli/controlArgs.js"
import { recognize } from "../../src/cli/controlArgs.js"
import * as Cli from "../../src/cli/command.js"
import * as CliFileSystem from "../../src/cli/fileSystem.js"

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

describe("the light path and the command tree", () => {
  /** The control command the tree parses from `argv`, or its failure's exit code. */
  const treeParse = async (argv: ReadonlyArray<string>): Promise<ControlArgs.ControlCommand | number> => {
    let parsed: ControlArgs.ControlCommand | undefined
    const noRun = Layer.effectContext(Effect.dieMessage("no run") as Effect.Effect<Context.Context<Cli.Requirements>>)
    const exit = await Effect.runPromiseExit(
      Cli.run(argv, noRun, { control: (command) => Effect.sync(() => void (parsed = command)) }).pipe(
        (effect) =>
          Console.consoleWith((console) =>
            Effect.withConsole(effect, { ...console, log: () => Effect.void, error: () => Effect.void })
          ),
        Effect.provide(Layer.mergeAll(CliFileSystem.layer, NodePath.layer, NodeTerminal.layer))
      )
    )
    if (Exit.isFailure(exit)) return Option.match(Cause.failureOption(exit.cause), { onNone: () => 70, onSome: Cli.exitCode })
    return parsed ?? 0
  }

  it("parses every line the light path runs into the same command", async () => {
    // Fault: the two parsers drift apart, and a line means one thing on the light path and another (or an error)
    // where only the tree parses it. Promise: for the lines the light path takes, the same command.
    const lines = [
      ["status"], ["status", "--json"], ["status", "--all", "blog*", "wiki"], ["--name", "a", "status", "--json"],
      ["-c", "apps.toml", "status"], ["status", "--control", "/x.sock", "--name", "b"], ["wake", "blog"],
      ["start", "blog", "--name", "a"], ["sleep", "blog"], ["stop", "blog", "-c", "f.toml"], ["restart", "blog"],
      ["reload"], ["reload", "--name", "apps"], ["logs"], ["logs", "blog"], ["logs", "-f"], ["logs", "blog", "-n", "5", "-f"],
      ["logs", "--lines", "0", "--follow", "blog"], ["--control", "/c.sock", "logs"], ["--name=a", "wake", "x"]
    ]
    for (const argv of lines) {
      const light = recognize(argv)
      expect(light._tag, argv.join(" ")).toBe("Control")
      expect(await treeParse(argv), argv.join(" ")).toEqual((light as { readonly command: unknown }).command)
    }
  })

  it("refuses the lines the light path leaves to it, as usage errors (exit 2)", async () => {
    for (const argv of [["wake"], ["logs", "-n", "x"], ["logs", "a", "b"], ["status", "--jsn"], ["reload", "x"]]) {
      expect(recognize(argv)._tag).toBe("Full")
      expect(await treeParse(argv), argv.join(" ")).toBe(2)
    }
  })
})
