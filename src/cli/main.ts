/**
 * The full way of the `soad` command: what the light path (cli/light.ts) leaves to it, run by
 * NodeRuntime.runMain. A run's usual line (`soad -s PATH -- app`, `soad -c FILE`) is parsed here without
 * @effect/cli (cli/runArgs.ts) and run at once (cli/serve.ts); any other line (help, completions, `soad check`,
 * a line with a mistake to explain) loads the command tree (cli/tree.ts) first.
 *
 * @internal
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as AppNotify from "../AppNotify.js"
import { NativeBindingError } from "../os/nativeErrors.js"
import * as Logging from "../Logging.js"
import * as ProcessService from "../ProcessService.js"
import * as RelayService from "../RelayService.js"
import * as SocketService from "../SocketService.js"
import * as Stderr from "../os/stderr.js"
import * as RunArgs from "./runArgs.js"
import * as Serve from "./serve.js"

/** Console.error as soad's own lines on its stderr, one queue with its log (os/stderr.ts). */
const stderrLine = (...words: ReadonlyArray<unknown>): Effect.Effect<void> =>
  Effect.sync(() => Logging.writeLine(`${words.map(String).join(" ")}\n`))

// What a run needs, built only by a run: help, check and the control subcommands load no native binding.
const RunLive = Layer.mergeAll(
  Layer.provideMerge(Serve.killOnSecondSignal, ProcessService.layer),
  SocketService.layer,
  RelayService.layer,
  AppNotify.layer
)

/**
 * Runs soad on `args` (argv without node and the script) until it ends, and exits with its code; `started` is
 * called once a run has started and settled.
 */
export const main = (args: ReadonlyArray<string>, started: () => void = () => {}): void => {
  // A write to stderr that fails (its reader gone, a full disk) must not end soad: lines are dropped and counted.
  // soad writes its stderr through os/stderr.ts (its errors too, below); process.stderr, if something makes it, is
  // guarded when made.
  Stderr.onStderrError(() => {})
  Logging.useStderr(Stderr.stderr)
  const line = RunArgs.recognize(args)
  let exitCode: (error: unknown) => number = Serve.exitCode
  const program = line !== undefined
    ? Serve.serve(line.parsed, line.command, started).pipe(Effect.provide(RunLive), Effect.tapError(Serve.report))
    : Effect.flatMap(Effect.promise(() => import("./tree.js")), (Tree) => {
      exitCode = Tree.exitCode
      return Tree.run(args, RunLive, started)
    })
  NodeRuntime.runMain(Console.consoleWith((console) => Effect.withConsole(program, { ...console, error: stderrLine })), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) return onExit(exitCode(failure.value)) // already printed
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
