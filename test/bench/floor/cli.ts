/**
 * The floor of the stack with a command line, for `BENCH_ONLY=idle`: @effect/cli parses one option (as soad's
 * `-s PATH`) and runs a fiber that never ends, with @effect/platform-node's context, bundled as soad is and run
 * with soad's V8 flags. It says on stderr when it runs.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"

const command = Command.make("floor", { socket: Options.text("socket").pipe(Options.withAlias("s")) }, () =>
  Effect.zipRight(Effect.sync(() => Fs.writeSync(2, "ready\n")), Effect.never))

Effect.runFork(Effect.provide(Command.run(command, { name: "floor", version: "0" })(process.argv), NodeContext.layer))
