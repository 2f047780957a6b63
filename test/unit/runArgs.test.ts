/**
 * The light run path's parser (cli/runArgs.ts) against the command tree's (cli/command.ts, @effect/cli): the same
 * flags, and for every line the light parser takes, the same Parsed and the same app command as the tree's run
 * handler gets, over generated lines, well-formed and hostile. A line it leaves goes to the tree, which says what
 * is wrong; a line it takes that the tree would refuse or read otherwise is the fault these tests look for.
 */
import * as Options from "@effect/cli/Options"
import type * as Usage from "@effect/cli/Usage"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Cli from "../../src/cli/command.js"
import * as CliFileSystem from "../../src/cli/fileSystem.js"
import * as RunArgs from "../../src/cli/runArgs.js"
import * as Serve from "../../src/cli/serve.js"

/** No services: the recording `serve` below needs none (the tree builds them before it calls it). */
const noServices = Layer.succeedContext(Context.empty() as Context.Context<Serve.Requirements>)
const platform = Layer.mergeAll(CliFileSystem.layer, NodePath.layer, NodeTerminal.layer)

/**
 * What the tree's run handler gets for `argv` (less the `subcommand: none` its subcommands add, which a run never
 * reads), or the exit code it ends with (0: it ran no run). `recording`: the handler records and stops; else it is
 * soad's own, which fails a wrong line before it needs a service.
 */
const tree = async (argv: ReadonlyArray<string>, recording = true): Promise<RunArgs.RunLine | number> => {
  let got: RunArgs.RunLine | undefined
  const record: typeof Serve.serve = (parsed, command) =>
    Effect.sync(() => {
      const { subcommand: _, ...flags } = parsed as RunArgs.Parsed & { readonly subcommand?: unknown }
      got = { parsed: flags, command }
    }).pipe(Effect.zipRight(Effect.interrupt))
  const exit = await Effect.runPromiseExit(
    Cli.run(argv, noServices, { plain: () => true, ...(recording ? { serve: record } : {}) }).pipe(
      (effect) =>
        Console.consoleWith((console) =>
          Effect.withConsole(effect, { ...console, log: () => Effect.void, error: () => Effect.void })
        ),
      Effect.provide(platform)
    )
  )
  if (got !== undefined) return got
  if (Exit.isFailure(exit)) return Option.match(Cause.failureOption(exit.cause), { onNone: () => 70, onSome: Cli.exitCode })
  return 0
}

/** The names an option's usage gives, and whether they take a value. */
const named = (usage: Usage.Usage): Array<{ readonly names: ReadonlyArray<string>; readonly value: boolean }> => {
  switch (usage._tag) {
    case "Named":
      return [{ names: usage.names, value: Option.isSome(usage.acceptedValues) }]
    case "Optional":
    case "Repeated":
      return named(usage.usage)
    case "Alternation":
    case "Concat":
      return [...named(usage.left), ...named(usage.right)]
    default:
      return []
  }
}

describe("a run's flags", () => {
  it("are the tree's: every option by each of its names, taking a value or not, and nothing else", () => {
    // Fault: a flag added to the tree and not here (or renamed in one of them) would leave its lines to the tree
    // at best, and at worst read a value as another flag's. Promise: one set of names, one arity each.
    const own = new Map(RunArgs.flags.map((flag) => [flag.key as string, flag]))
    const options = Object.entries(Cli.runOptions).filter(([, option]) => Options.isOptions(option))
    expect(options.map(([key]) => key).sort()).toEqual([...own.keys()].sort())
    for (const [key, option] of options) {
      const usages = named(Options.getUsage(option as Options.Options<unknown>))
      expect(usages.length, key).toBe(1)
      const flag = own.get(key)!
      expect([...usages[0]!.names].sort(), key).toEqual([...flag.names].sort())
      expect(usages[0]!.value, key).toBe(flag.kind._tag !== "Flag")
    }
  })
})

/** Values a flag might be given: well-formed ones and ones close to the edges of what the tree reads as a value. */
const plainValue = fc.oneof(
  fc.constantFrom("/run/app.sock", "127.0.0.1:8080", "http=:8080", ":9000", "auto", "240", "5m", "1h30m", "TERM", "15", "0660",
    "www-data", "accept", "notify", "debug", "json", "text", "quiet", "blog", "a.b@c-1", "50/1s", "fd:3", "@abstract"),
  fc.stringMatching(/^[a-z0-9/:._=@]{1,12}$/)
)

/** Values the checked flags take: a config file that is a file or is not there, an address, an instance name. */
const checkedValues: Partial<Record<keyof RunArgs.Parsed, ReadonlyArray<string>>> = {
  configFile: ["package.json", "/etc/soad/none.toml", "apps.toml"],
  metrics: ["127.0.0.1:9100", "/run/soad-metrics.sock", ":9100"],
  instance: ["blog", "a.b@c-1", "X"]
}

/** A well-formed line: each flag once (the repeated ones any number of times), then `--` and an app. */
const wellFormed = fc.tuple(
  fc.subarray([...RunArgs.flags]),
  fc.array(plainValue, { minLength: 1, maxLength: 3 }),
  fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
  fc.boolean()
).chain(([flags, sockets, app, dashes]) =>
  fc.tuple(
    ...flags.map((flag) => {
      const name = fc.constantFrom(...flag.names)
      switch (flag.kind._tag) {
        case "Flag":
          return name.map((n) => [n])
        case "Choice":
          return fc.tuple(name, fc.constantFrom(...flag.kind.choices)).map(([n, v]) => [n, v])
        case "Checked":
          return fc.tuple(name, fc.constantFrom(...checkedValues[flag.key]!)).map(([n, v]) => [n, v])
        case "Repeated":
          return fc.tuple(name, fc.array(plainValue, { minLength: 1, maxLength: 2 })).map(([n, vs]) => vs.flatMap((v) => [n, v]))
        default:
          return fc.tuple(name, plainValue, fc.boolean()).map(([n, v, attached]) =>
            attached && n.startsWith("--") ? [`${n}=${v}`] : attached ? [`${n}${v}`] : [n, v])
      }
    })
  ).map((parts) => [...sockets.flatMap((s) => ["-s", s]), ...parts.flat(), ...(dashes ? ["--", "app", ...app] : [])])
)

/** A hostile line: words from a pool of flags, values, subcommands, built-ins and boolean words, in any order. */
const hostile = fc.array(
  fc.oneof(
    fc.constantFrom(...RunArgs.flags.flatMap((flag) => flag.names)),
    fc.constantFrom("--", "-", "--help", "-h", "--version", "--completions", "--wizard", "--log-level", "status", "check",
      "logs", "yes", "no", "true", "off", "1", "0", "-5", "--bogus", "-x", "-tS", "--socket=", "--name=!", "--metrics=",
      " /a", "", "maybe", "--accept=yes", "-t5", "-S", "--ready=notify", "app", "/", "/tmp", "package.json", "src"),
    plainValue
  ),
  { maxLength: 10 }
)

describe("the light run parser", () => {
  it("takes every well-formed line, and the tree's run gets the same flags and app command", async () => {
    await fc.assert(
      fc.asyncProperty(wellFormed, async (argv) => {
        const light = RunArgs.recognize(argv)
        expect(light, argv.join(" ")).toBeDefined()
        expect(await tree(argv), argv.join(" ")).toEqual(light)
      }),
      { numRuns: 120 }
    )
  })

  it("takes only lines the tree runs the same way, whatever the words", async () => {
    // Fault: the light parser reads a hostile line one way and the tree another (a value taken for a flag, a
    // subcommand, a boolean's value), or runs a line the tree would refuse.
    let taken = 0
    await fc.assert(
      fc.asyncProperty(hostile, async (argv) => {
        const light = RunArgs.recognize(argv)
        if (light === undefined) return
        taken += 1
        expect(await tree(argv), argv.join(" ")).toEqual(light)
      }),
      { numRuns: 300 }
    )
    expect(taken).toBeGreaterThan(10) // the pool made lines it takes, not only ones it leaves
  })

  it("takes the lines a service manager starts soad with", () => {
    for (
      const argv of [
        ["-s", "/run/app.sock", "-t", "240", "-S", "TERM", "--", "gunicorn", "app:app"],
        ["-c", "/etc/soad/apps.toml"],
        ["--config=/etc/soad/apps.toml", "--log-format", "json"],
        ["-l", "http=127.0.0.1:8080", "-t", "5m", "--", "./server"],
        ["-l", ":8080", "--upstream", "auto", "--", "node", "server.js"],
        ["-l", ":7000", "--accept", "--max-connections", "16", "--", "./handler"],
        ["--log-level", "debug", "-s/run/a.sock", "-t5", "--metrics", "127.0.0.1:9100", "--name", "blog", "--", "app"]
      ]
    ) expect(RunArgs.recognize(argv), argv.join(" ")).toBeDefined()
  })

  it("leaves to the tree every line it might read otherwise, and the tree refuses the wrong ones (exit 2)", async () => {
    const refused = [
      ["-s", "/a", "--bogus", "--", "app"], // an unknown flag
      ["-s", "/a", "-t", "1", "-t", "2", "--", "app"], // given twice
      ["-s", "/a", "--ready", "maybe", "--", "app"], // not a choice
      ["-s", "/a", "--name", "!x", "--", "app"], // no instance name
      ["-s", "/a", "--metrics", "", "--", "app"], // no address
      ["-s", "/a", "-t"] // a flag without its value
    ]
    for (const argv of refused) {
      expect(RunArgs.recognize(argv), argv.join(" ")).toBeUndefined()
      expect(await tree(argv, false), argv.join(" ")).toBe(2)
    }
    const other = [
      ["--help"], ["-s", "/a", "--help"], ["--version"], ["check", "f.toml"], ["-s", "status", "--", "app"],
      ["-s", "-x", "--", "app"], ["--accept", "yes", "-s", "/a", "--", "app"], ["-s", " /a", "--", "app"],
      ["-s", "/a", "app"] // the app's command without --, which the tree runs
    ]
    for (const argv of other) expect(RunArgs.recognize(argv), argv.join(" ")).toBeUndefined()
  })
})
