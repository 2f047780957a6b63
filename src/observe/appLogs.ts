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
 * soad's own log. Each service keeps at most `ringLines` lines and `ringBytes` bytes.
 *
 * Two limits, two answers. Beyond `rateLines` lines a second from one service's apps, soad stops reading their
 * pipes until the second is over (observe/outputRate.ts): the kernel's pipe buffer fills and the app waits on its
 * own write(2), as it would on a slow terminal, and soad says so once per episode (`output_paused`, then
 * `output_resumed` with what it came to). Reading and dropping instead, as soad did first, cost it the whole core
 * the app wrote with (9.2 s of CPU per 10 s under `yes`, `BENCH_ONLY=flood`): a flooding app slowed every other
 * service. When soad's stderr itself (or a `soad logs -f` reader) is too slow, lines are still dropped and counted
 * (`soad_app_log_lines_dropped_total{service}`), never pushed back onto the apps: that stderr is shared, so one slow
 * reader would otherwise stall every app's logging, and with it the apps. An app being stopped is never paused
 * (`Output.release`): its last lines, beyond the rate, are dropped and counted, so its stop never waits on soad.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import * as Monotonic from "../core/monotonic.js"
import * as Logging from "../Logging.js"
import { event, type Format, type LineSink, queueLimitBytes, toJournal, writeLine } from "../Logging.js"
import * as Journald from "../os/journal.js"
import * as OutputPipes from "../os/outputPipes.js"
import { isoTime } from "./isoTime.js"
import { cutAfter, OutputRate, windowMs } from "./outputRate.js"
import { printable, stringify } from "./terminal.js"
import { net } from "../os/lazyNet.js"

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
 * The lines per second soad takes from one service's apps; beyond, it stops reading their pipes until the second
 * is over. Far more than an app logs in earnest (a busy web server logs a line per request), and what soad's
 * stderr takes without falling behind.
 */
export const rateLines = 10_000

/** App lines dropped: soad's stderr could not take them, or beyond `rateLines` from an app being stopped. */
export const droppedLines = Metric.counter("soad_app_log_lines_dropped_total", {
  description: `Lines of an app's output soad dropped: its stderr too slow (128 KiB waiting) or gone, or beyond ${rateLines} lines/s while the app was being stopped.`,
  incremental: true
})

/** Seconds a service's output pipes were left unread because its apps wrote beyond `rateLines`. */
export const pausedSeconds = Metric.counter("soad_app_output_paused_seconds_total", {
  description: `Seconds soad left a service's output pipes unread because its apps wrote more than ${rateLines} lines/s (the apps waited on their writes meanwhile).`,
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
  /**
   * The app `pid` is being stopped, or is gone: its pipes are read at once and never paused again, so its last
   * lines never wait on soad (beyond the rate they are dropped and counted) and its stop never waits on a pipe.
   */
  readonly release: (pid: number) => void
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
  /** Does soad capture the apps' output? false (`inherit`): `output` is undefined, and `soad logs` is refused. */
  readonly captures: boolean
  /** Where the output of an app of this service goes; undefined: the app writes to soad's own stdout and stderr. */
  readonly output: (service: string) => Output | undefined
  /** The latest `n` lines of a service, oldest first (none if it has written nothing yet). */
  readonly tail: (service: string, n: number) => ReadonlyArray<LogLine>
  /** Calls `follower` with each new line of the service until the returned function is called. */
  readonly follow: (service: string, follower: Follower) => () => void
}>() {}

/** One pipe soad reads: paused with the rest of a chunk `held` while over the rate. */
interface Reader {
  readonly pid: number
  readonly stream: Stream
  /** Being stopped or gone: never paused again. */
  released: boolean
  held: Buffer | undefined
  /** Takes the held rest as the rate allows and reads the pipe again (or stays paused if still over). */
  readonly unhold: () => void
}

interface Channel {
  readonly ring: Ring
  readonly followers: Set<Follower>
  readonly dropped: Metric.Metric.Counter<number>
  readonly paused: Metric.Metric.Counter<number>
  readonly rate: OutputRate
  readonly readers: Set<Reader>
  /** Readers paused over the rate, in the order they paused: the first is read first at the next second. */
  readonly held: Set<Reader>
  /** A resume is scheduled (at the rate's resumeAt); an episode is watched until it is over. */
  resuming: boolean
  watching: boolean
  /** Lines dropped over the rate since the last `output_dropped`, which is due (at most one a second). */
  skipped: number
  noticing: boolean
}

/** AppLogs that capture: every service's output has somewhere to go. */
export type Capturing = Omit<AppLogs["Type"], "output"> & { readonly output: (service: string) => Output }

/**
 * The apps' output written to `sink` (soad's stderr) as `format` says; the pipes are closed when the scope
 * closes.
 */
export const make = (
  format: Format,
  sink: LineSink = Logging.stderr(),
  journal: Journal | undefined = undefined
): Effect.Effect<Capturing, never, Scope.Scope> =>
  Effect.gen(function*() {
    const channels = new Map<string, Channel>()
    const open = new Set<Net.Socket>()
    yield* Effect.addFinalizer(() => Effect.sync(() => open.forEach((socket) => socket.destroy())))
    // Pipes are read in libuv's callbacks: what waits (a resume, an episode's end) and what is said runs as fibers
    // of this scope, on its Clock.
    const clock = yield* Effect.clock
    const fork = yield* FiberSet.makeRuntime<never, void, never>()
    const say = (service: string, said: Effect.Effect<void>) => void fork(Effect.annotateLogs(said, "service", service))

    const channel = (service: string): Channel => {
      let found = channels.get(service)
      if (found === undefined) {
        const dropped = Metric.tagged(droppedLines, "service", service)
        const paused = Metric.tagged(pausedSeconds, "service", service)
        dropped.unsafeUpdate(0, []) // exported at 0 before the first drop
        paused.unsafeUpdate(0, [])
        found = {
          ring: new Ring(),
          followers: new Set(),
          dropped,
          paused,
          rate: new OutputRate(rateLines),
          readers: new Set(),
          held: new Set(),
          resuming: false,
          watching: false,
          skipped: 0,
          noticing: false
        }
        channels.set(service, found)
      }
      return found
    }

    /** Counts lines dropped over the rate (from a released app), said at most once a second with the count. */
    const skip = (service: string, target: Channel, lines: number) => {
      if (lines === 0) return
      target.skipped += lines
      target.dropped.unsafeUpdate(lines, [])
      if (target.noticing) return
      target.noticing = true
      say(
        service,
        Effect.delay(
          Effect.suspend(() => {
            const count = target.skipped
            target.skipped = 0
            target.noticing = false
            return event("warn", "output_dropped", `dropped ${count} line${count === 1 ? "" : "s"} of the app's output (more than ${rateLines} lines/s while it stops)`, { lines: count })
          }),
          Duration.millis(windowMs)
        )
      )
    }

    /** The second is over: the paused pipes are read again, the first paused first. */
    const resumeAll = (target: Channel) => {
      target.resuming = false
      target.paused.unsafeUpdate(target.rate.resume(Monotonic.unsafeNow(clock)) / 1000, [])
      const readers = [...target.held]
      target.held.clear()
      for (const reader of readers) reader.unhold()
    }

    /** Reads the paused pipes again once the current second is over. */
    const scheduleResume = (service: string, target: Channel) => {
      if (target.resuming) return
      target.resuming = true
      const wait = Math.max(0, target.rate.resumeAt - Monotonic.unsafeNow(clock))
      say(service, Effect.delay(Effect.sync(() => resumeAll(target)), Duration.millis(wait)))
    }

    /** Says once, when the episode is over (no pause for calmMs), what it came to. */
    const watchEpisode = (service: string, target: Channel) => {
      if (target.watching) return
      target.watching = true
      say(
        service,
        Effect.gen(function*() {
          for (;;) {
            const now = yield* Monotonic.now
            const summary = target.rate.settle(now)
            const calmAt = target.rate.calmAt
            if (summary !== undefined || calmAt === undefined) {
              target.watching = false
              if (summary === undefined) return
              const { lastedMs, lines, pausedMs, pauses } = summary
              return yield* event(
                "info",
                "output_resumed",
                `the app's output is under ${rateLines} lines/s again: soad held it back for ${(pausedMs / 1000).toFixed(1)} s ` +
                  `of ${(lastedMs / 1000).toFixed(1)} s (${pauses} pause${pauses === 1 ? "" : "s"}, ${lines} lines read meanwhile)`,
                { paused_ms: pausedMs, lasted_ms: lastedMs, pauses, lines }
              )
            }
            yield* Effect.sleep(Duration.millis(Math.max(1, calmAt - now)))
          }
        })
      )
    }

    /** Reads one stream of one app: a chunk's lines go to the ring, the followers, and stderr in one write. */
    const capture = (service: string, pid: number, stream: Stream, fd: number) => {
      const target = channel(service)
      let batch: Array<string> = []
      let continuing = false
      let now = 0
      let time = ""
      const split = splitter((buffer, start, end, continued) => {
        target.rate.take(1)
        const line: LogLine = { time: now, stream, pid, line: buffer.toString("utf8", start, end), continued, bytes: end - start }
        target.ring.push(line)
        for (const follower of target.followers) follower(line)
        if (journal === undefined || !journal.send(service, line)) {
          batch.push(format === "json" ? jsonLine(service, line, time) : textLine(service, line, continuing))
        }
        continuing = continued
      })
      const flush = () => {
        if (batch.length === 0) return
        const lines = batch.length
        writeLine(batch.join(""), sink, stderrLimitBytes, () => target.dropped.unsafeUpdate(lines, []))
        batch = []
      }
      let socket: Net.Socket
      try {
        socket = new (net().Socket)({ fd, readable: true, writable: false })
      } catch {
        // Never thrown back into the spawn, whose app runs by now: its output is lost (it gets EPIPE), not the app.
        return OutputPipes.close(fd)
      }
      open.add(socket)
      socket.unref() // the app's output never keeps soad alive
      const stamp = () => {
        now = Monotonic.unsafeNow(clock)
        time = isoTime(new Date(now))
      }
      /** Over the rate: the pipe is left unread until the second is over, with the rest of its chunk held. */
      const hold = (rest: Buffer) => {
        reader.held = rest
        socket.pause()
        target.held.add(reader)
        if (target.rate.pause(now)) {
          say(
            service,
            event(
              "warn",
              "output_paused",
              `the app writes more than ${rateLines} lines/s: soad reads its output at that rate, and the app waits on its writes meanwhile`,
              { pid, stream, rate_lines: rateLines }
            )
          )
          watchEpisode(service, target)
        }
        scheduleResume(service, target)
      }
      /** Takes the lines the rate allows; the rest of the chunk is held (or, once released, dropped). */
      const feed = (chunk: Buffer) => {
        const allowed = target.rate.allowance(now)
        const cut = allowed === 0 ? 0 : cutAfter(chunk, allowed)
        if (cut > 0) split.push(cut === chunk.length ? chunk : chunk.subarray(0, cut))
        if (cut < chunk.length) {
          const rest = chunk.subarray(cut)
          if (reader.released) {
            skip(service, target, OutputPipes.countLines(rest))
            split.reset()
          } else hold(rest)
        }
        flush()
      }
      const reader: Reader = {
        pid,
        stream,
        released: false,
        held: undefined,
        unhold: () => {
          const rest = reader.held
          if (rest === undefined || socket.destroyed) return
          reader.held = undefined
          stamp()
          feed(rest)
          if (reader.held === undefined) socket.resume()
        }
      }
      target.readers.add(reader)
      socket.on("data", (chunk: Buffer) => {
        // Paused, a pipe delivers nothing; should a chunk come anyway, it waits behind the held one, in order.
        if (reader.held !== undefined) return void (reader.held = Buffer.concat([reader.held, chunk]))
        stamp()
        feed(chunk)
      })
      socket.on("end", () => {
        stamp()
        split.end()
        flush()
      })
      socket.on("error", () => socket.destroy())
      socket.on("close", () => {
        open.delete(socket)
        target.readers.delete(reader)
        target.held.delete(reader)
      })
    }

    /** The app `pid` of `service` is being stopped or is gone: its pipes are read now, and never paused again. */
    const release = (service: string, pid: number) => {
      const target = channels.get(service)
      if (target === undefined) return
      for (const reader of target.readers) {
        if (reader.pid !== pid) continue
        reader.released = true
        if (target.held.delete(reader)) reader.unhold()
      }
      if (target.held.size === 0) target.paused.unsafeUpdate(target.rate.resume(Monotonic.unsafeNow(clock)) / 1000, [])
    }

    return {
      captures: true,
      output: (service) => ({
        capture: (pid, stream, fd) => capture(service, pid, stream, fd),
        release: (pid) => release(service, pid)
      }),
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
    const connection = yield* Journald.connect(path)
    if (connection === undefined) return undefined
    return { send: (service, line) => connection.send(journalEntry(service, line)) }
  })

/**
 * The apps' output on soad's stderr in this format, for as long as the layer lives; each line to the journal
 * instead when soad runs under systemd (`journalPath` is journald's socket; tests give another).
 */
export const layer = (format: Format, journalPath: string = journalSocket): Layer.Layer<AppLogs> =>
  Layer.scoped(AppLogs, Effect.flatMap(openJournal(journalPath), (journal) => make(format, Logging.stderr(), journal)))

/** Nothing captured: each app inherits soad's stdout and stderr, and keeps no lines for `soad logs`. */
export const inherit: AppLogs["Type"] = {
  captures: false,
  output: () => undefined,
  tail: () => [],
  follow: () => () => {}
}

/** `inherit` as a layer: what `SoadContext` provides where soad's command line does not set up the apps' logs. */
export const layerInherit: Layer.Layer<AppLogs> = Layer.succeed(AppLogs, inherit)
