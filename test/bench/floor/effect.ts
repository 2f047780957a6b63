/**
 * The floor of the stack, for `BENCH_ONLY=idle`: the smallest Effect program that stays up (a fiber that never
 * ends), bundled as soad is and run with soad's V8 flags. It says on stderr when it runs.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"

Effect.runFork(Effect.zipRight(Effect.sync(() => Fs.writeSync(2, "ready\n")), Effect.never))
