/**
 * soad's log lines: one line per lifecycle event on stderr, for people
 * (`2026-11-23T20:15:30.123Z INFO [blog] app started (…)`) or as JSON for journald and log collectors
 * (`{"time":…,"level":"info","service":"blog","event":"started","pid":4242,"spawn_ms":2.1,"message":…}`).
 *
 * When stderr is the journal (JOURNAL_STREAM names stderr's own device and inode), each line starts with its syslog
 * priority instead of a timestamp (`<6>INFO [blog] app started (…)`): journald takes the priority from it and adds
 * its own time.
 *
 * A log line that cannot be written never stops soad: stderr whose reader is gone (EPIPE), a full disk (ENOSPC)
 * or a reader too slow to keep up only cost the lines, which are counted (`soad_log_lines_dropped_total`).
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
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import { isoTime } from "./observe/isoTime.js"
import { printable, stringify } from "./observe/terminal.js"

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

/** Log lines soad dropped because stderr could not take them. */
export const droppedLines = Metric.counter("soad_log_lines_dropped_total", {
  description: "Log lines soad could not write to stderr (its reader gone, the disk full, or 256 KiB already waiting) and dropped.",
  incremental: true
})

/**
 * The most soad lets wait in memory for a slow stderr reader, beyond what the kernel's pipe buffer holds (64 KiB on
 * Linux): about 2,000 text lines. Node queues a write to a full pipe without limit and without blocking; past this,
 * a line is dropped instead.
 */
export const queueLimitBytes = 256 * 1024

/** A stream soad writes its lines to (process.stderr, or whatever stands for it: os/stderr.ts in the program). */
export interface LineSink {
  readonly writableLength: number
  write(chunk: string, callback: (error?: Error | null) => void): boolean
  on(event: "error", listener: (error: Error) => void): unknown
}

let stderrSink: () => LineSink = () => process.stderr

/** Where soad's lines and its apps' output go by default: process.stderr unless `useStderr` said otherwise. */
export const stderr = (): LineSink => stderrSink()

/**
 * Sends soad's lines to `sink` from now on (the program: its own writer of fd 2, os/stderr.ts; a test: a
 * recorder); the sink used until now, to put it back.
 */
export const useStderr = (sink: () => LineSink): (() => LineSink) => {
  const before = stderrSink
  stderrSink = sink
  return before
}

const guarded = new WeakSet<LineSink>()
const ignore = () => {}

/**
 * Makes write errors on `sink` harmless: Node reports a failed write to stderr as an 'error' event (a pipe whose
 * reader is gone: EPIPE; a file on a full disk: ENOSPC) that, unheard, ends the process. Each line's own failure
 * is counted by `writeLine`; the event itself is only listened to.
 */
export const guard = (sink: LineSink): void => {
  if (guarded.has(sink)) return
  guarded.add(sink)
  sink.on("error", ignore)
}

const countDropped = () => droppedLines.unsafeUpdate(1, [])

/**
 * Writes one line to `sink` without throwing and without letting more than `limit` bytes (`queueLimitBytes`) wait
 * in memory; a line that is not written is counted by `onDrop` (in `droppedLines`), once. Apps' output passes a
 * lower limit and its own count (observe/appLogs.ts), so a flooding app never crowds out soad's own lines.
 */
export const writeLine = (
  line: string,
  sink: LineSink = stderr(),
  limit: number = queueLimitBytes,
  onDrop: () => void = countDropped
): void => {
  guard(sink)
  let counted = false
  const drop = () => {
    if (counted) return
    counted = true
    onDrop()
  }
  if (sink.writableLength > limit) return drop()
  try {
    sink.write(line, (error) => {
      if (error !== null && error !== undefined) drop()
    })
  } catch {
    drop() // a synchronous (file) write that throws, as Node did before its SyncWriteStream passed errors on
  }
}

/**
 * Whether stderr (`fd`) is the journal: JOURNAL_STREAM is systemd's "DEVICE:INODE" of the stream it connected, and
 * only counts if `fd` is still that stream (as sd_journal_stream_fd's users check: a process that inherited the
 * variable with its stderr sent elsewhere is not logging to the journal).
 */
export const toJournal = (env: NodeJS.ProcessEnv = process.env, fd = 2): boolean => {
  const stream = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? "")
  if (stream === null) return false
  try {
    const stat = Fs.fstatSync(fd, { bigint: true })
    return stat.dev === BigInt(stream[1]!) && stat.ino === BigInt(stream[2]!)
  } catch {
    return false
  }
}

/** The syslog priority journald reads from a line's `<N>` prefix: 3 error, 4 warning, 6 info, 7 debug. */
export const priority = (level: LogLevel.LogLevel): number => {
  switch (level._tag) {
    case "Fatal":
      return 2
    case "Error":
      return 3
    case "Warning":
      return 4
    case "Info":
      return 6
    default:
      return 7
  }
}

/** For the journal: every line of `line` starts with `<N>`, as journald reads priorities (SyslogLevelPrefix). */
const prioritized = (level: LogLevel.LogLevel, line: string): string =>
  line.replace(/^(?=.)/gm, `<${priority(level)}>`)

/**
 * Human lines on stderr; for the journal (`journal`), with the priority prefix instead of the time. A message may
 * carry what an app chose (its STATUS=): control characters other than TAB are replaced, one event stays one line.
 */
const textLogger = (journal: boolean): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, date, logLevel, message }) => {
    const service = HashMap.get(annotations, "service")
    const prefix = Option.isSome(service) ? `[${String(service.value)}] ` : ""
    const detail = Cause.isEmpty(cause) ? "" : ` ${Cause.pretty(cause).split("\n")[0]}`
    const line = `${levelLabel(logLevel)} ${printable(`${prefix}${text(message)}${detail}`)}\n`
    writeLine(journal ? prioritized(logLevel, line) : `${isoTime(date)} ${line}`)
  })

/** Human lines on stderr. */
export const human: Logger.Logger<unknown, void> = textLogger(false)

/** Human lines for the journal: `<6>INFO [blog] app started (…)`, no time (journald adds its own). */
export const journalHuman: Logger.Logger<unknown, void> = textLogger(true)

/** One JSON object per line (time, level, service, event, fields, message); for the journal, after its priority. */
const jsonLogger = (journal: boolean): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, date, logLevel, message }) => {
    const line: Record<string, unknown> = {
      time: isoTime(date),
      level: logLevel._tag === "Warning" ? "warn" : logLevel.label.toLowerCase()
    }
    for (const key of ["service", "event", "pid"]) {
      const value = HashMap.get(annotations, key)
      if (Option.isSome(value)) line[key] = value.value
    }
    for (const [key, value] of annotations) if (!(key in line)) line[key] = value
    line.message = text(message)
    if (!Cause.isEmpty(cause)) line.cause = Cause.pretty(cause)
    writeLine((journal ? `<${priority(logLevel)}>` : "") + stringify(line) + "\n")
  })

/** One JSON object per line on stderr: time, level, service, event, the event's fields, message. */
export const json: Logger.Logger<unknown, void> = jsonLogger(false)

/** The same for the journal, each object after its `<N>` priority. */
export const journalJson: Logger.Logger<unknown, void> = jsonLogger(true)

/** The formats `--log-format` takes. */
export const formats = ["text", "json"] as const

/** A `--log-format` value. */
export type Format = typeof formats[number]

/** The logger for a format, for the journal or not. */
export const loggerFor = (format: Format, journal: boolean): Logger.Logger<unknown, void> =>
  format === "json" ? (journal ? journalJson : json) : (journal ? journalHuman : human)

/**
 * Makes the human (or JSON) logger the only logger, at the given level; with priority prefixes when stderr is the
 * journal (`journal`, by default: toJournal()).
 */
export const layer = (level: Level, format: Format = "text", journal?: boolean): Layer.Layer<never> =>
  Layer.merge(
    Layer.scopedDiscard(
      Effect.flatMap(
        Effect.sync(() => journal ?? toJournal()),
        (onJournal) => Effect.locallyScoped(FiberRef.currentLoggers, HashSet.make(loggerFor(format, onJournal)))
      )
    ),
    Logger.minimumLogLevel(toLogLevel(level))
  )

/** Field values of an event: numbers, strings, booleans, or nothing. */
export type Fields = Readonly<Record<string, string | number | boolean | null | undefined>>

/**
 * Logs a lifecycle event: `message` for people; `name` and `fields` (snake_case, durations in ms) for machines.
 */
export const event = (
  level: "debug" | "info" | "warn" | "error",
  name: string,
  message: string,
  fields: Fields = {}
): Effect.Effect<void> => {
  const annotations: Record<string, unknown> = { event: name }
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) annotations[key] = value
  const log = level === "debug"
    ? Effect.logDebug(message)
    : level === "info"
    ? Effect.logInfo(message)
    : level === "warn"
    ? Effect.logWarning(message)
    : Effect.logError(message)
  return Effect.annotateLogs(log, annotations)
}
