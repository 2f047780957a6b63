/**
 * soad's log lines: one line per event on stderr, `2026-11-23T20:15:30.123Z INFO [blog] app started (…)`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"

/** The levels `--log-level` takes, quietest first. */
export const levels = ["quiet", "error", "warn", "info", "debug"] as const

/** A `--log-level` value. */
export type Level = typeof levels[number]

/** The Effect LogLevel for a `--log-level` value. */
export const toLogLevel = (level: Level): LogLevel.LogLevel => {
  switch (level) {
    case "quiet":
      return LogLevel.None
    case "error":
      return LogLevel.Error
    case "warn":
      return LogLevel.Warning
    case "info":
      return LogLevel.Info
    case "debug":
      return LogLevel.Debug
  }
}

const levelLabel = (level: LogLevel.LogLevel): string =>
  level._tag === "Warning" ? "WARN" : level.label

const text = (message: unknown): string =>
  Array.isArray(message) ? message.map(text).join(" ") : typeof message === "string" ? message : String(message)

/** Human lines on stderr. */
export const human: Logger.Logger<unknown, void> = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const service = HashMap.get(annotations, "service")
  const prefix = Option.isSome(service) ? `[${String(service.value)}] ` : ""
  const detail = Cause.isEmpty(cause) ? "" : ` ${Cause.pretty(cause).split("\n")[0]}`
  process.stderr.write(`${date.toISOString()} ${levelLabel(logLevel)} ${prefix}${text(message)}${detail}\n`)
})

/** Makes the human logger the only logger, at the given level. */
export const layer = (level: Level): Layer.Layer<never> =>
  Layer.merge(
    Layer.scopedDiscard(Effect.locallyScoped(FiberRef.currentLoggers, HashSet.make(human))),
    Logger.minimumLogLevel(toLogLevel(level))
  )
