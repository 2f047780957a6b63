#!/usr/bin/env node
/**
 * The `soad` command: argv → the CLI, run by NodeRuntime.runMain.
 */
import * as CliFileSystem from "./cli/fileSystem.js"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Cli from "./cli/command.js"
import { NativeBindingError } from "./os/native.js"
import * as Logging from "./Logging.js"
import * as ProcessService from "./ProcessService.js"
import * as RelayService from "./RelayService.js"
import * as SocketService from "./SocketService.js"

// What a run needs, built only by a run: help, check and the control subcommands load no native binding.
const RunLive = Layer.mergeAll(
  Layer.provideMerge(Cli.killOnSecondSignal, ProcessService.layer),
  SocketService.layer,
  RelayService.layer
)

const MainLive = Layer.mergeAll(CliFileSystem.layer, NodePath.layer, NodeTerminal.layer)

// soad is `soad` in ps, top, pidof and pgrep, not `node`: the command line shows as `soad ARGS…`, and the process
// name (what top, pgrep and pidof read; the title sets it to 15 bytes of the whole line) as `soad` alone.
process.title = ["soad", ...process.argv.slice(2)].join(" ")
try {
  Fs.writeFileSync("/proc/self/comm", "soad")
} catch {
  // not Linux: the title is all there is
}

// A write to stderr that fails (its reader gone, a full disk) must not end soad: lines are dropped and counted.
Logging.guard(process.stderr)

NodeRuntime.runMain(Cli.run(process.argv.slice(2), RunLive).pipe(Effect.provide(MainLive)), {
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
