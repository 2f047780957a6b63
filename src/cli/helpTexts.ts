/**
 * The command tree's help and version texts, rendered at build time (src/cli/bundle.mjs) so that the light path
 * prints them without loading the tree: `soad --help` and `soad status --help` are then what the tree would print,
 * with its colours (the light path drops them when stdout is no terminal, as the tree does).
 *
 * @internal
 */
import * as NodePath from "@effect/platform-node/NodePath"
import * as CliTerminal from "./terminal.js"
import * as Console from "effect/Console"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { helpTopics } from "./controlArgs.js"
import * as Cli from "./command.js"
import * as CliFileSystem from "./fileSystem.js"

/** What the tree prints on stdout for `args`, in colour, as one text (without console.log's final newline). */
const render = (args: ReadonlyArray<string>): Promise<string> => {
  const printed: Array<string> = []
  // Help and versions never build what a run needs.
  const noRun = Layer.effectContext(Effect.dieMessage("help needs no run") as Effect.Effect<Context.Context<Cli.Requirements>>)
  return Effect.runPromise(
    Cli.run(args, noRun, { plain: () => false }).pipe(
      (effect) =>
        Console.consoleWith((console) =>
          Effect.withConsole(effect, {
            ...console,
            log: (...text: ReadonlyArray<unknown>) => Effect.sync(() => void printed.push(text.map(String).join(" ")))
          })
        ),
      Effect.provide(Layer.mergeAll(CliFileSystem.layer, NodePath.layer, CliTerminal.layer))
    )
  ).then(() => printed.join("\n"))
}

/** Every text the light path prints: `version`, `help` (soad's own) and `help TOPIC` for each subcommand it knows. */
export const helpTexts = async (): Promise<Record<string, string>> => {
  const texts: Record<string, string> = { version: await render(["--version"]), help: await render(["--help"]) }
  for (const topic of helpTopics) texts[`help ${topic}`] = await render([topic, "--help"])
  return texts
}
