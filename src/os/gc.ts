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

/** Asks V8 for a full, memory-reducing GC and the C library to trim its heap; nothing where Node lacks it. */
export const collectGarbageNow = (): void => {
  native().lowMemory()
}

/** The same, as an Effect. */
export const collectGarbage: Effect.Effect<void> = Effect.sync(collectGarbageNow)

/** The same, said at debug level once done (`settled`): a test that measures soad's CPU waits for it. */
export const settle: Effect.Effect<void> = Effect.zipRight(
  collectGarbage,
  event("debug", "settled", "gave the memory start-up used back to the system")
)
