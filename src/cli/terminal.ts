/**
 * The terminal @effect/cli asks for. Its size and output are read from stdout as NodeTerminal reads them; reading
 * keys and lines (only `--wizard` does) loads NodeTerminal then. NodeTerminal imports `node:readline`, about 0.5 MB
 * of RSS that a sleeping soad would keep for a prompt it never shows (measured by hand, RSS of `node -e` with and
 * without it; `npm run bench` has soad's own idle figure).
 *
 * @internal
 */
import * as PlatformError from "@effect/platform/Error"
import * as Terminal from "@effect/platform/Terminal"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Scope from "effect/Scope"
import { stdout } from "./stdout.js"

/**
 * Once stdin has ended (at once if it has). NodeTerminal hears only keys: at the end of a stdin that is no terminal
 * (`soad --wizard < /dev/null`, a script's pipe) no key ever comes, and the wizard waited for ever. The end of input
 * is taken as Ctrl-D: the wizard quits.
 */
const stdinEnded: Effect.Effect<void> = Effect.async<void>((resume) => {
  if (process.stdin.readableEnded) return resume(Effect.void)
  const onEnd = () => resume(Effect.void)
  process.stdin.once("end", onEnd)
  return Effect.sync(() => void process.stdin.off("end", onEnd))
})

/** Writes `text` to stdout, failing as NodeTerminal's `display` does. */
const display = (text: string): Effect.Effect<void, PlatformError.PlatformError> =>
  Effect.uninterruptible(Effect.async<void, PlatformError.PlatformError>((resume) => {
    stdout().write(text, (error) =>
      resume(
        error === null || error === undefined ? Effect.void : Effect.fail(
          new PlatformError.BadArgument({ module: "Terminal", method: "display", description: "Failed to write prompt to stdout", cause: error })
        )
      ))
  }))

/** The terminal, for as long as the layer's scope: NodeTerminal is made in it the first time keys or a line are read. */
export const layer: Layer.Layer<Terminal.Terminal> = Layer.scoped(
  Terminal.Terminal,
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const node = yield* Effect.cached(
      Effect.flatMap(Effect.promise(() => import("@effect/platform-node/NodeTerminal")), (NodeTerminal) => Scope.extend(NodeTerminal.make(), scope))
    )
    return Terminal.Terminal.of({
      columns: Effect.sync(() => stdout().columns ?? 0),
      rows: Effect.sync(() => stdout().rows ?? 0),
      isTTY: Effect.sync(() => Boolean(stdout().isTTY)),
      readInput: Effect.flatMap(node, (terminal) =>
        Effect.tap(terminal.readInput, (input) =>
          Effect.forkScoped(Effect.zipRight(stdinEnded, Effect.sync(() => Mailbox.isMailbox(input) && input.unsafeDone(Exit.void)))))),
      readLine: Effect.flatMap(node, (terminal) =>
        Effect.raceFirst(terminal.readLine, Effect.zipRight(stdinEnded, Effect.fail(new Terminal.QuitException())))),
      display
    })
  })
)
