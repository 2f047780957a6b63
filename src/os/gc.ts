/**
 * Gives back to the system what start-up (or a reload) left behind, once soad sleeps: parsing the command line and
 * the config file, opening listeners and logging leave several MB that V8 would otherwise keep for a long while.
 * A plain full GC (Node's `gc()`) frees objects but keeps V8's pages; V8 shrinks them only from its memory reducer,
 * some 10 s later. Node's LowMemoryNotification does both at once, and the C library returns its free pages
 * (measured with `npm run bench`: 53.0 → 49.3 MB RSS 5 s after listening, one service).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { event } from "../Logging.js"
import { native } from "./native.js"

/**
 * Asks V8 for a full, memory-reducing GC and the C library to trim its heap; nothing where Node lacks it.
 * `flushCode`: the GC also drops the bytecode of every function not running, which V8 would otherwise keep for good
 * in a soad that sleeps (src/native/memory.c); a function called again is compiled again, as on its first call.
 */
export const collectGarbageNow = (flushCode = false): void => {
  native().lowMemory(flushCode)
}

/** The same, as an Effect. */
export const collectGarbage = (flushCode = false): Effect.Effect<void> => Effect.sync(() => collectGarbageNow(flushCode))

/**
 * The same, said at debug level once done (`settled`): a test that measures soad's CPU waits for it. After
 * start-up, with `flushCode`: what only the start ran is not kept (after a reload, the code that serves requests
 * has run, and is kept).
 */
export const settle = (flushCode = false): Effect.Effect<void> =>
  Effect.zipRight(
    collectGarbage(flushCode),
    event("debug", "settled", "gave the memory start-up used back to the system")
  )
