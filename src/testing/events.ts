/**
 * What a test reads of soad's logs: every structured event (src/Logging.ts `event`) with its name, level and fields,
 * captured in order; and errors shaped as the native binding throws them, for fakes to throw. Part of `soad/testing`.
 *
 * @since 0.1.0
 */
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"

/**
 * An Error as the native binding throws it: `syscall: message`, with `errno` (a positive errno number, as
 * `Os.constants.errno` has it) and `syscall`. Set it as a `World`'s `spawnError` or `armError`: soad names the
 * errno from it (ENOENT → a `SpawnError` with code "ENOENT").
 */
export const nativeError = (syscall: string, errno: number, message: string): Error =>
  Object.assign(new Error(`${syscall}: ${message}`), { errno, syscall })

/** A structured event as soad logs it (src/Logging.ts `event`): its name, level and fields, and the message. */
export interface LoggedEvent {
  /** The event's name (`listening`, `app_started`, `stopping`, …: the README's events list). */
  readonly name: string
  /** Effect's level label: "DEBUG", "INFO", "WARN", "ERROR". */
  readonly level: string
  /** Its fields (the log annotations but `event`): `{ reason: "idle", pid: 1000, idle_ms: 60000 }`, `service` too. */
  readonly fields: Readonly<Record<string, unknown>>
  /** The human sentence; assert the fields, not this. */
  readonly message: string
}

/**
 * Captures every event logged under the returned layer (which replaces the default logger, so nothing is printed),
 * debug ones too, in order. Merge `layer` into what the code under test is provided.
 */
export const captureEvents = (): { readonly events: Array<LoggedEvent>; readonly layer: Layer.Layer<never> } => {
  const events: Array<LoggedEvent> = []
  const layer = Layer.merge(Logger.minimumLogLevel(LogLevel.Debug), Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, logLevel, message }) => {
      const fields: Record<string, unknown> = {}
      for (const [key, value] of HashMap.toEntries(annotations)) if (key !== "event") fields[key] = value
      events.push({
        name: String(Option.getOrElse(HashMap.get(annotations, "event"), () => "")),
        level: logLevel.label,
        fields,
        message: Array.isArray(message) ? message.join(" ") : String(message)
      })
    })
  ))
  return { events, layer }
}
