/**
 * The command tree's way of the `soad` command (cli/command.ts, @effect/cli): help, completions, `soad check`,
 * the control commands' rarer lines, and every run line the light run path leaves (cli/runArgs.ts). cli/main.ts
 * imports this only for such a line, so that a run parsed without the tree never evaluates @effect/cli.
 *
 * @internal
 */
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Cli from "./command.js"
import * as CliFileSystem from "./fileSystem.js"
import type * as Serve from "./serve.js"
import * as CliTerminal from "./terminal.js"

const MainLive = Layer.mergeAll(CliFileSystem.layer, NodePath.layer, CliTerminal.layer)

/** Parses `args` with the command tree and runs what they say; a run's services come from `live`. */
export const run = (args: ReadonlyArray<string>, live: Layer.Layer<Serve.Requirements>, started?: () => void) =>
  Effect.provide(Cli.run(args, live, started === undefined ? {} : { started }), MainLive)

/** The exit code for a failure of `run`. */
export const exitCode = Cli.exitCode
