/**
 * The pure parts of the command line: argv split at `--` (the app's command never parsed), attached values,
 * soad's --log-level kept from @effect/cli's built-in one; and what soad fixes of the library's output (help,
 * completions, errors), each test showing the library's own output the fix is for, so that a fix the library
 * makes unnecessary shows up here.
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as CommandDescriptor from "@effect/cli/CommandDescriptor"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import { describe, expect, it } from "vitest"
import type * as ControlArgs from "../../src/cli/controlArgs.js"
import { recognize } from "../../src/cli/controlArgs.js"
import * as Cli from "../../src/cli/command.js"
import * as Serve from "../../src/cli/serve.js"
import * as CliFileSystem from "../../src/cli/fileSystem.js"
import * as Users from "../../src/os/users.js"

const noRun = Layer.effectContext(Effect.dieMessage("no run") as Effect.Effect<Context.Context<Cli.Requirements>>)
const platform = Layer.mergeAll(CliFileSystem.layer, NodePath.layer, NodeTerminal.layer)
const config = CliConfig.make({ isCaseSensitive: true, showBuiltIns: false, showTypes: false })
// eslint-disable-next-line no-control-regex
const ansi = /\x1b\[[0-9;]*m/g

/** What `effect` prints on stdout and stderr, and how it ends. */
const printed = async <E>(effect: Effect.Effect<void, E, Layer.Layer.Success<typeof platform>>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const exit = await Effect.runPromiseExit(
    effect.pipe(
      (self) =>
        Console.consoleWith((console) =>
          Effect.withConsole(self, {
            ...console,
            log: (...text: ReadonlyArray<unknown>) => Effect.sync(() => void out.push(text.map(String).join(" "))),
            error: (...text: ReadonlyArray<unknown>) => Effect.sync(() => void err.push(text.map(String).join(" ")))
          })
        ),
      Effect.provide(platform)
    )
  )
  return { out: out.join("\n"), err: err.join("\n"), exit }
}

/** soad's output for `argv`, plain or in colour. */
const soad = (argv: ReadonlyArray<string>, plain = true) => printed(Cli.run(argv, noRun, { plain: () => plain }))

/** @effect/cli's own output for `argv` (no splitArgv, nothing fixed), with a footer as soad gives its examples. */
const library = (argv: ReadonlyArray<string>) =>
  printed(
    Command.run(Cli.make(undefined, noRun), { name: "soad", version: Cli.version, footer: HelpDoc.p("THE FOOTER") })(
      ["node", "soad", ...argv]
    ).pipe(Effect.provide(CliConfig.layer(config)))
  )

/** What the library's parser makes of `argv` (the program's name first, as its CliApp gives it). */
const parse = (argv: ReadonlyArray<string>) =>
  Effect.runPromise(
    CommandDescriptor.parse(Cli.make(undefined, noRun).descriptor, ["soad", ...argv], config).pipe(
      Effect.provide(platform)
    )
  )

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

  it("is needed: the library takes a leading --log-level for its own, and splits neither -t5 nor a repeated --socket=PATH", async () => {
    const parsed = (directive: Awaited<ReturnType<typeof parse>>) => directive._tag === "UserDefined" ? directive.value : directive.option._tag
    expect(await parse(["--log-level", "debug", "-s", "/a.sock"])).toMatchObject({ _tag: "BuiltIn", option: { _tag: "SetLogLevel" } })
    expect(parsed(await parse(Cli.splitArgv(["--log-level", "debug", "-s", "/a.sock"]).own))).toMatchObject({ logLevel: "debug" })
    expect(parsed(await parse(["-s", "/a.sock", "-t5"]))).toMatchObject({ socket: ["/a.sock"], timeUntilStop: Option.none(), command: ["-t5"] })
    expect(parsed(await parse(Cli.splitArgv(["-s", "/a.sock", "-t5"]).own))).toMatchObject({ timeUntilStop: Option.some("5") })
    expect(parsed(await parse(["--socket=/a.sock"]))).toMatchObject({ socket: [], command: ["--socket=/a.sock"] })
    expect(parsed(await parse(Cli.splitArgv(["--socket=/a.sock"]).own))).toMatchObject({ socket: ["/a.sock"] })
  })
})

describe("help: the library's documents, less its faults", () => {
  it("drops the library's boilerplate paragraphs, which no setting turns off", async () => {
    const boilerplate = [
      "A user-defined piece of text.", "A file.", "A true or false value.", "This setting is optional.",
      "This option may be repeated zero or more times.", "One of the following: accept, notify"
    ]
    const own = await library(["--help"])
    for (const line of boilerplate) expect(own.out, line).toContain(line)
    for (const argv of [["--help"], ["status", "--help"], ["logs", "--help"]]) {
      const help = await soad(argv)
      expect(help.exit._tag).toBe("Success")
      for (const line of boilerplate) expect(help.out, `${argv.join(" ")}: ${line}`).not.toContain(line)
    }
    expect((await soad(["--help"])).out).toMatch(/^--ready accept \| notify\n\n {2}When a started app is ready/m)
  })

  it("a subcommand's usage starts with soad, and its help ends without soad's examples", async () => {
    // The library: `$ status …` (it adds the program only when --help comes first), and the footer on every page.
    const own = await library(["status", "--help"])
    expect(own.out).toMatch(/^\$ status \[--json\]/m)
    expect(own.out).toContain("THE FOOTER")
    for (const argv of [["status", "--help"], ["--help", "status"], ["status", "-h"]]) {
      const help = await soad(argv)
      expect(help.out, argv.join(" ")).toMatch(/^\$ soad status \[--json\] \[--all\]/m)
      expect(help.out, argv.join(" ")).not.toMatch(/^EXAMPLES$/m)
    }
    const root = await soad(["--help"])
    expect(root.out).toMatch(/^\$ soad \[\(-c, --config\)\]/m)
    expect(root.out).toMatch(/^EXAMPLES$/m)
    expect(root.out).toContain("soad -s /run/app.sock -t 240 -S TERM -- gunicorn app:app")
  })

  it("is plain text without any escape sequence when plain, else the library's colours on the same text", async () => {
    for (const argv of [["--help"], ["wake", "--help"]]) {
      const plain = await soad(argv, true)
      const coloured = await soad(argv, false)
      expect(plain.out).not.toContain("\x1b")
      expect(coloured.out).toContain("\x1b[")
      expect(coloured.out.replace(ansi, "")).toBe(plain.out)
    }
  })

  it("states the defaults a run resolves to when the flags are not given", async () => {
    // Fault: a default changed in one place (or written twice) and help saying another.
    const help = (await soad(["--help"])).out
    const stated = (flag: string): string => {
      const entry = new RegExp(`^\\(?(?:-\\w, )?${flag}\\b[^\\n]*\\n\\n {2}[^\\n]*Default: ([^\\n]*?)\\.$`, "m").exec(help)
      expect(entry, flag).not.toBeNull()
      return entry![1]!
    }
    const directive = await parse(["-s", "/run/a.sock"])
    if (directive._tag !== "UserDefined") throw new Error("not a run")
    const config = Either.getOrThrow(Serve.toConfig(directive.value, ["app"], Users.resolver))
    const seconds = (duration: Duration.Duration) => String(Duration.toSeconds(duration))
    expect(stated("--time-until-stop")).toBe(seconds(config.idleTimeout))
    expect(stated("--stop-timeout")).toBe(seconds(config.stopTimeout))
    expect(stated("--start-timeout")).toBe(seconds(config.startTimeout))
    expect(stated("--min-uptime")).toBe(seconds(config.minUptime))
    expect(stated("--max-backoff")).toBe(seconds(config.maxBackoff))
    expect(stated("--start-limit-interval")).toBe(seconds(config.startLimitInterval))
    expect(stated("--start-limit-burst")).toBe(String(config.startLimitBurst))
    expect(stated("--shutdown-signal")).toBe(config.shutdownSignal.name.replace(/^SIG/, ""))
    expect(stated("--ready")).toBe(config.ready)
    expect(stated("--backlog")).toBe(String(config.socket.backlog))
    const accepting = await parse(["-s", "/run/a.sock", "--accept"])
    if (accepting._tag !== "UserDefined") throw new Error("not a run")
    const { mode } = Either.getOrThrow(Serve.toConfig(accepting.value, ["app"], Users.resolver))
    if (mode._tag !== "Accept") throw new Error(`--accept gave ${mode._tag}`)
    expect(stated("--max-connections")).toBe(String(mode.maxConnections))
    expect(stated("--max-accept-rate")).toBe(`${mode.maxAcceptRate.count}/${seconds(mode.maxAcceptRate.per)}s`)
    expect(stated("--log-level")).toBe((directive.value as Cli.Parsed).logLevel)
    expect(stated("--log-format")).toBe((directive.value as Cli.Parsed).logFormat)
  })

  it("--version prints the version of package.json, once, without the library's empty line", async () => {
    const { version } = JSON.parse(Fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
    expect(Cli.version).toBe(version)
    expect((await library(["--version"])).out).toBe(`${version}\n`)
    expect(await soad(["--version"])).toMatchObject({ out: version, err: "" })
  })
})

describe("completions: the library's scripts, less its faults", () => {
  it("bash lists a choice's values apart, as compgen -W wants them", async () => {
    expect((await library(["--completions", "bash"])).out).toContain(`compgen -W "accept,notify"`)
    const script = (await soad(["--completions", "bash"])).out
    expect(script).toContain(`compgen -W "accept notify"`)
    expect(script).toContain(`compgen -W "quiet error warn info debug"`)
  })

  it.each(["zsh", "fish"])("%s offers soad's --log-level only, not the library's built-in one", async (shell) => {
    expect((await library(["--completions", shell])).out).toContain("Sets the minimum log level for a command.")
    const script = (await soad(["--completions", shell])).out
    expect(script).not.toContain("Sets the minimum log level")
    expect(script).toContain("How much soad logs on stderr")
  })

  it("zsh says that an option of text takes a value", async () => {
    expect((await library(["--completions", "zsh"])).out).toMatch(/^\s*'--socket\[[^\n]*\]' \\$/m)
    const script = (await soad(["--completions", "zsh"])).out
    expect(script).toMatch(/^\s*'--socket\[[^\n]*\]:VALUE:_files' \\$/m)
    expect(script).toMatch(/^\s*'--json\[[^\n]*\]' \\$/m) // a switch takes none
  })
})

describe("errors: one line each, in soad's words", () => {
  it("a bad choice names the flag and the value, which the library's refusal does not", async () => {
    expect((await library(["-s", "x", "--ready", "soon"])).err).toBe("Expected one of the following cases: accept, notify\n")
    for (const [argv, line] of [
      [["-s", "x", "--ready", "soon"], "--ready: 'soon' is not one of accept, notify"],
      [["--log-level", "loud", "-s", "x"], "--log-level: 'loud' is not one of quiet, error, warn, info, debug"],
      [["-s", "x", "--log-format=yaml"], "--log-format: 'yaml' is not one of text, json"]
    ] as const) {
      expect(await soad(argv), argv.join(" ")).toMatchObject({ out: "", err: `soad: ${line} (see soad --help)` })
    }
  })

  it("says each error once (the library prints it, and again after its built-in --log-level)", async () => {
    expect((await library(["wake", "--log-level", "debug"])).err).toBe("Missing argument <NAME>\n\nMissing argument <NAME>\n")
    const result = await soad(["wake", "--log-level", "debug"])
    expect(result.err).toBe("soad: Missing argument <NAME> (see soad --help)")
    expect(Exit.isFailure(result.exit) && Option.map(Cause.failureOption(result.exit.cause), Cli.exitCode)).toEqual(Option.some(2))
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
