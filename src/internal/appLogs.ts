/**
 * Each app's own output, attributed: soad reads the app's stdout and stderr through a pipe each (the child gets
 * the write ends as fds 1 and 2), cuts them into lines, writes each line on soad's stderr under the service's
 * name (`[blog] line`, or a JSON event with `service`, `stream`, `pid` and `line`), and keeps the latest lines of
 * each service for `soad logs NAME [-n N] [-f]`.
 *
 * Always pipes, even when soad's stderr is a terminal: every line is then attributed, and a terminal that the app
 * would otherwise hold (and could reconfigure) stays soad's. Under systemd (soad's stderr is the journal), each line
 * goes to journald's own socket as an entry of its own, with the service as its SYSLOG_IDENTIFIER (`journalctl -t
 * blog`); when journald cannot take it at once, it goes to stderr as elsewhere.
 *
 * Bounded everywhere: a line longer than `maxLineBytes` is cut into pieces, each marked as continued (`[blog]+`
 * in text, `"continued":true` in JSON); bytes that are not UTF-8 become U+FFFD, so no output breaks the framing of
 * soad's own log. Each service keeps at most `ringLines` lines and `ringBytes` bytes. soad reads every pipe as fast
 * as the app writes, so an app never blocks on a full pipe: beyond `rateLines` lines a second, or when soad's
 * stderr (or a `soad logs -f` reader) is too slow, lines are dropped and counted
 * (`soad_app_log_lines_dropped_total{service}`) rather than queued, and rather than pushed back onto the app: the
 * stderr is shared, so backpressure from one flooding app would stall every other app's logging, and with it the
 * apps themselves; and an app blocked in write(2) stops answering its own clients.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import { type Format, type LineSink, queueLimitBytes, toJournal, writeLine } from "../Logging.js"
import { native } from "./native.js"
import { printable, stringify } from "./terminal.js"

/** Which of the app's streams a line came from. */
export type Stream = "stdout" | "stderr"

/** One line of an app's output (or a piece of a longer one). */
export interface LogLine {
  /** Epoch milliseconds when soad read it. */
  readonly time: number
  readonly stream: Stream
  readonly pid: number
  /** The text, without its newline; bytes that are not UTF-8 are U+FFFD. */
  readonly line: string
  /** The next piece continues this line (it was longer than `maxLineBytes`). */
  readonly continued: boolean
  /** Its size in bytes as the app wrote it (what the ring's byte bound counts). */
  readonly bytes: number
}

/** The longest piece of a line: a longer line is cut into pieces of at most this, marked as continued. */
export const maxLineBytes = 16 * 1024

/** The lines each service keeps for `soad logs`. */
export const ringLines = 1000

/** The bytes each service keeps for `soad logs`, however long its lines. */
export const ringBytes = 256 * 1024

/**
 * The most app output may wait for soad's stderr: half of what soad's own lines may, so a flooding app never
 * crowds them out.
 */
export const stderrLimitBytes = queueLimitBytes / 2

/**
 * The lines per second soad takes from one service's apps; beyond, lines are counted and dropped unread until the
 * next second. Reading on costs soad a memchr per chunk, so an app that floods (`yes`) delays the other services
 * by at most a few milliseconds per turn of the loop, and soad's memory stays flat.
 */
export const rateLines = 10_000

/** App lines dropped: beyond `rateLines`, or because soad's stderr could not take them. */
export const droppedLines = Metric.counter("soad_app_log_lines_dropped_total", {
  description: `Lines of an app's output soad dropped: beyond ${rateLines} lines/s, or its stderr too slow (128 KiB waiting) or gone.`,
  incremental: true
})

/** A cut point at or before `end` that does not split a UTF-8 sequence (binary input: `end` itself). */
const boundary = (buffer: Buffer, start: number, end: number): number => {
  for (let at = end, steps = 0; at > start && steps < 4; at--, steps++) {
    if ((buffer[at]! & 0xc0) !== 0x80) return at
  }
  return end
}

/** Receives each line, or piece of a long line, as it is cut: `buffer` from `start` to `end`, without its newline. */
export type Emit = (buffer: Buffer, start: number, end: number, continued: boolean) => void

/** Cuts a byte stream into lines of at most `maxBytes` (pieces of longer ones marked as continued). */
export interface Splitter {
  readonly push: (chunk: Buffer) => void
  /** The stream ended: a last line without its newline is still a line. */
  readonly end: () => void
  /** Forgets the unfinished line (its chunk's rest was dropped). */
  readonly reset: () => void
}

/**
 * A splitter that calls `emit` for each line, and keeps at most `maxBytes` of an unfinished one. Linear: each
 * chunk is searched once for its newlines, and each byte of an unfinished line is copied a bounded number of
 * times (into a buffer that doubles as it fills), however small the chunks: the pieces are the same whatever the
 * chunks (test/unit/appLogs.test.ts).
 */
export const splitter = (emit: Emit, maxBytes: number = maxLineBytes): Splitter => {
  let pending = Buffer.alloc(0)
  let kept = 0 // bytes of the unfinished line in `pending`
  /** Keeps `bytes` after the unfinished line (a copy: the chunk is not kept); they fit within `maxBytes`. */
  const keep = (bytes: Buffer) => {
    if (kept + bytes.length > pending.length) {
      const grown = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(2 * pending.length, kept + bytes.length, 256)))
      pending.copy(grown, 0, 0, kept)
      pending = grown
    }
    bytes.copy(pending, kept)
    kept += bytes.length
  }
  /** The unfinished line followed by `part`, and forgets it. */
  const take = (part: Buffer): Buffer => {
    const line = kept === 0 ? part : Buffer.concat([pending.subarray(0, kept), part])
    kept = 0
    if (pending.length > 256) pending = Buffer.alloc(0) // not held between lines
    return line
  }
  /** Emits `line`'s pieces beyond `maxBytes`; the last one too if the line is complete, else it is kept. */
  const cut = (line: Buffer, complete: boolean) => {
    let start = 0
    while (line.length - start > maxBytes) {
      const end = boundary(line, start, start + maxBytes)
      emit(line, start, end, true)
      start = end
    }
    if (complete) emit(line, start, line.length, false)
    else keep(line.subarray(start))
  }
  return {
    push: (chunk) => {
      let at = 0
      for (let newline = chunk.indexOf(10, at); newline >= 0; newline = chunk.indexOf(10, at)) {
        cut(take(chunk.subarray(at, newline)), true)
        at = newline + 1
      }
      if (at === chunk.length) return
      const rest = chunk.subarray(at)
      if (kept + rest.length <= maxBytes) keep(rest)
      else cut(take(rest), false)
    },
    end: () => {
      if (kept > 0) cut(take(Buffer.alloc(0)), true)
    },
    reset: () => {
      kept = 0
      pending = Buffer.alloc(0)
    }
  }
}

/** The latest lines of one service, within `ringLines` lines and `ringBytes` bytes. */
export class Ring {
  private readonly slots: Array<LogLine | undefined>
  private first = 0
  private count = 0
  private bytes = 0
  constructor(private readonly maxLines: number = ringLines, private readonly maxBytes: number = ringBytes) {
    this.slots = []
  }
  /** Adds a line, forgetting the oldest ones beyond the bounds (the newest line is always kept). */
  push(line: LogLine): void {
    if (this.count === this.maxLines) this.dropOldest()
    this.slots[(this.first + this.count) % this.maxLines] = line
    this.count++
    this.bytes += line.bytes
    while (this.bytes > this.maxBytes && this.count > 1) this.dropOldest()
  }
  /** The latest `n` lines, oldest first. */
  tail(n: number): Array<LogLine> {
    const take = Math.max(0, Math.min(n, this.count))
    const out: Array<LogLine> = []
    for (let i = this.count - take; i < this.count; i++) out.push(this.slots[(this.first + i) % this.maxLines]!)
    return out
  }
  private dropOldest(): void {
    this.bytes -= this.slots[this.first]!.bytes
    this.slots[this.first] = undefined
    this.first = (this.first + 1) % this.maxLines
    this.count--
  }
}

/** Where one app's output goes: soad reads each stream's pipe from `fd` until it ends. */
export interface Output {
  readonly capture: (pid: number, stream: Stream, fd: number) => void
}

/** Receives each new line of a service while `soad logs -f` follows it. */
export type Follower = (line: LogLine) => void

/**
 * A line as soad writes it on its stderr, in text: `[blog] line` (`[blog]+ …` for a piece continuing the previous
 * one), its control characters other than TAB replaced (a CR could forge another service's line).
 */
export const textLine = (service: string, line: LogLine, continuing: boolean): string =>
  `[${service}]${continuing ? "+" : ""} ${printable(line.line)}\n`

/** A line as soad writes it on its stderr, in JSON: one event with service, stream, pid and the exact line. */
export const jsonLine = (service: string, line: LogLine, time: string): string =>
  stringify({
    time,
    level: "info",
    service,
    event: "output",
    stream: line.stream,
    pid: line.pid,
    line: line.line,
    ...(line.continued ? { continued: true } : {})
  }) + "\n"

/** The apps' output, per service. */
export class AppLogs extends Context.Tag("soad/AppLogs")<AppLogs, {
  /** Where the output of an app of this service goes. */
  readonly output: (service: string) => Output
  /** The latest `n` lines of a service, oldest first (none if it has written nothing yet). */
  readonly tail: (service: string, n: number) => ReadonlyArray<LogLine>
  /** Calls `follower` with each new line of the service until the returned function is called. */
  readonly follow: (service: string, follower: Follower) => () => void
}>() {}

interface Channel {
  readonly ring: Ring
  readonly followers: Set<Follower>
  readonly dropped: Metric.Metric.Counter<number>
  /** The current second (epoch ms at its start), the lines taken in it and those dropped over the rate. */
  second: number
  taken: number
  skipped: number
}

/** soad's own line saying how many lines of a service it dropped over the rate, in the log's format. */
const droppedNotice = (format: Format, service: string, lines: number, now: number): string => {
  const time = new Date(now).toISOString()
  const message = `dropped ${lines} line${lines === 1 ? "" : "s"} of the app's output (more than ${rateLines} lines/s)`
  return format === "json"
    ? JSON.stringify({ time, level: "warn", service, event: "output_dropped", lines, message }) + "\n"
    : `${time} WARN [${service}] ${message}\n`
}

/**
 * The apps' output written to `sink` (soad's stderr) as `format` says; the pipes are closed when the scope
 * closes.
 */
export const make = (
  format: Format,
  sink: LineSink = process.stderr,
  journal: Journal | undefined = undefined
): Effect.Effect<AppLogs["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const channels = new Map<string, Channel>()
    const open = new Set<Net.Socket>()
    yield* Effect.addFinalizer(() => Effect.sync(() => open.forEach((socket) => socket.destroy())))

    const channel = (service: string): Channel => {
      let found = channels.get(service)
      if (found === undefined) {
        const dropped = Metric.tagged(droppedLines, "service", service)
        dropped.unsafeUpdate(0, []) // exported at 0 before the first drop
        found = { ring: new Ring(), followers: new Set(), dropped, second: 0, taken: 0, skipped: 0 }
        channels.set(service, found)
      }
      return found
    }

    /** Starts a new second for the channel once the last is over, saying what the last one dropped. */
    const tick = (service: string, target: Channel, now: number) => {
      if (now - target.second < 1000) return
      if (target.skipped > 0) writeLine(droppedNotice(format, service, target.skipped, now), sink)
      target.second = now
      target.taken = 0
      target.skipped = 0
    }

    /** Counts lines dropped over the rate. */
    const skip = (target: Channel, lines: number) => {
      target.skipped += lines
      target.dropped.unsafeUpdate(lines, [])
    }

    /** Reads one stream of one app: a chunk's lines go to the ring, the followers, and stderr in one write. */
    const capture = (service: string, pid: number, stream: Stream, fd: number) => {
      const target = channel(service)
      let batch: Array<string> = []
      let continuing = false
      let now = 0
      let overflow = 0 // lines of this chunk over the rate
      let time = ""
      const split = splitter((buffer, start, end, continued) => {
        if (target.taken >= rateLines) return void overflow++
        target.taken++
        const line: LogLine = { time: now, stream, pid, line: buffer.toString("utf8", start, end), continued, bytes: end - start }
        target.ring.push(line)
        for (const follower of target.followers) follower(line)
        if (journal === undefined || !journal.send(service, line)) {
          batch.push(format === "json" ? jsonLine(service, line, time) : textLine(service, line, continuing))
        }
        continuing = continued
      })
      const flush = () => {
        if (overflow > 0) skip(target, overflow)
        overflow = 0
        if (batch.length === 0) return
        const lines = batch.length
        writeLine(batch.join(""), sink, stderrLimitBytes, () => target.dropped.unsafeUpdate(lines, []))
        batch = []
      }
      const countLines = native().countLines
      let socket: Net.Socket
      try {
        socket = new Net.Socket({ fd, readable: true, writable: false })
      } catch {
        // Never thrown back into the spawn, whose app runs by now: its output is lost (it gets EPIPE), not the app.
        return native().close(fd)
      }
      open.add(socket)
      socket.unref() // the app's output never keeps soad alive
      const stamp = () => {
        now = Date.now()
        time = new Date(now).toISOString()
      }
      socket.on("data", (chunk: Buffer) => {
        stamp()
        tick(service, target, now)
        if (target.taken < rateLines) split.push(chunk)
        else {
          skip(target, countLines(chunk))
          split.reset()
        }
        flush()
      })
      socket.on("end", () => {
        stamp()
        tick(service, target, now)
        split.end()
        flush()
      })
      socket.on("error", () => socket.destroy())
      socket.on("close", () => open.delete(socket))
    }

    return {
      output: (service) => ({ capture: (pid, stream, fd) => capture(service, pid, stream, fd) }),
      tail: (service, n) => channels.get(service)?.ring.tail(n) ?? [],
      follow: (service, follower) => {
        const target = channel(service)
        target.followers.add(follower)
        return () => target.followers.delete(follower)
      }
    }
  })

/** Sends one line of a service's app to the journal; false if journald cannot take it now. */
export interface Journal {
  readonly send: (service: string, line: LogLine) => boolean
}

/** journald's socket for entries sent in its native protocol. */
export const journalSocket = "/run/systemd/journal/socket"

/** A journal entry for a line (journald's native protocol: KEY=value lines; a line of output has no newline). */
export const journalEntry = (service: string, line: LogLine): string =>
  `MESSAGE=${line.line}\nPRIORITY=${line.stream === "stderr" ? 4 : 6}\nSYSLOG_IDENTIFIER=${service}\n` +
  `SOAD_SERVICE=${service}\nSOAD_STREAM=${line.stream}\nSOAD_PID=${line.pid}\n`

/** The journal, when soad's stderr is journald's and its socket can be reached; its socket closes with the scope. */
const openJournal = (path: string): Effect.Effect<Journal | undefined, never, Scope.Scope> =>
  Effect.gen(function*() {
    if (!toJournal()) return undefined
    const fd = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          return native().journalConnect(path)
        } catch {
          return undefined // no journald socket: the lines go to stderr, which journald reads
        }
      }),
      (fd) => Effect.sync(() => fd !== undefined && native().close(fd))
    )
    if (fd === undefined) return undefined
    return {
      send: (service, line) => {
        try {
          return native().journalSend(fd, journalEntry(service, line))
        } catch {
          return false
        }
      }
    }
  })

/**
 * The apps' output on soad's stderr in this format, for as long as the layer lives; each line to the journal
 * instead when soad runs under systemd (`journalPath` is journald's socket; tests give another).
 */
export const layer = (format: Format, journalPath: string = journalSocket): Layer.Layer<AppLogs> =>
  Layer.scoped(AppLogs, Effect.flatMap(openJournal(journalPath), (journal) => make(format, process.stderr, journal)))
