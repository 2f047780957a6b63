/**
 * The full way of the `soad` command: argv → the @effect/cli command tree, run by NodeRuntime.runMain. bin.ts
 * imports this only for what the light path (cli/light.ts) leaves to it: a run, `soad check`, completions, and
 * command lines the light path does not parse.
 *
 * @internal
 */
import * as CliFileSystem from "./fileSystem.js"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as CliTerminal from "./terminal.js"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as AppNotify from "../AppNotify.js"
import * as Cli from "./command.js"
import { NativeBindingError } from "../os/nativeErrors.js"
import * as Logging from "../Logging.js"
import * as ProcessService from "../ProcessService.js"
import * as RelayService from "../RelayService.js"
import * as SocketService from "../SocketService.js"

// What a run needs, built only by a run: help, check and the control subcommands load no native binding.
const RunLive = Layer.mergeAll(
  Layer.provideMerge(Cli.killOnSecondSignal, ProcessService.layer),
  SocketService.layer,
  RelayService.layer,
  AppNotify.layer
)

const MainLive = Layer.mergeAll(CliFileSystem.layer, NodePath.layer, CliTerminal.layer)

/**
 * Runs soad on `args` (argv without node and the script) until it ends, and exits with its code; `started` is
 * called once a run has started and settled.
 */
export const main = (args: ReadonlyArray<string>, started?: () => void): void => {
  // A write to stderr that fails (its reader gone, a full disk) must not end soad: lines are dropped and counted.
  Logging.guard(process.stderr)
  NodeRuntime.runMain(Cli.run(args, RunLive, started === undefined ? {} : { started }).pipe(Effect.provide(MainLive)), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) return onExit(Cli.exitCode(failure.value)) // already printed
      const missing = Cause.defects(exit.cause).pipe(Chunk.findFirst((defect) => defect instanceof NativeBindingError))
      if (Option.isSome(missing)) {
        Logging.writeLine(`soad: ${(missing.value as Error).message}\n`)
        return onExit(1)
      }
      Logging.writeLine(`soad: internal error: ${Cause.pretty(exit.cause)}\n`)
      onExit(70)
    }
  })
}
