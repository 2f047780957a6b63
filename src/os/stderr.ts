/**
 * soad's stderr, written without process.stderr (the program sends its lines here: Logging.useStderr in
 * cli/main.ts). Under systemd (the journal's socket) or a supervisor (a pipe), process.stderr is a net.Socket:
 * node:net and Node's streams, some 1 MB a sleeping soad would keep for its log lines alone (measured with
 * `npm run bench`, README "Figures"). Lines go to fd 2 instead:
 * - a file, a terminal, /dev/null: written at once, as Node writes its own stderr to them;
 * - a pipe or a socket: made non-blocking (as libuv makes it for process.stderr) and written as far as the kernel
 *   takes them; the rest waits in memory, in order, until fd 2 can be written to (a one-shot watch on Node's loop).
 *   How much may wait is the writer's to bound (Logging.writeLine, by `writableLength`).
 * A write that fails (EPIPE: the reader is gone; ENOSPC) fails its line and every line waiting; each caller counts
 * its own. Until the native addon is loaded (or without an fd 2), lines go to process.stderr.
 *
 * @internal
 */
import * as Fs from "node:fs"
import type { LineSink } from "../Logging.js"
import { nativeIfLoaded } from "./native.js"

interface Waiting {
  data: Buffer
  readonly callback: (error?: Error | null) => void
}

const wouldBlock = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException).code
  return code === "EAGAIN" || code === "EWOULDBLOCK"
}

/**
 * Lines to `fd`. `blocking`: written at once, whole (a file, a terminal); else `fd` is non-blocking and what the
 * kernel does not take waits until `watchWritable` says it can be written to.
 */
export const fdSink = (
  fd: number,
  blocking: boolean,
  watchWritable: (fd: number, callback: (error: string | null) => void) => void
): LineSink => {
  const waiting: Array<Waiting> = []
  let bytes = 0
  let watching = false
  const failAll = (error: Error) => {
    const failed = waiting.splice(0)
    bytes = 0
    for (const line of failed) line.callback(error)
  }
  /** Writes what waits until the kernel takes no more; true when nothing is left. */
  const flush = (): boolean => {
    while (waiting.length > 0) {
      const head = waiting[0]!
      let written: number
      try {
        written = Fs.writeSync(fd, head.data)
      } catch (error) {
        if (wouldBlock(error)) return false
        failAll(error as Error)
        return true
      }
      bytes -= written
      if (written < head.data.length) {
        head.data = head.data.subarray(written)
        if (blocking) continue
        return false
      }
      waiting.shift()
      head.callback(null)
    }
    return true
  }
  const arm = (): void => {
    if (watching) return
    watching = true
    try {
      watchWritable(fd, (error) => {
        watching = false
        // A reader that has gone comes as the watch's error (POLLERR: libuv says EBADF): a write says what it is.
        if (flush()) return
        if (error !== null) return failAll(new Error(`stderr: ${error}`))
        arm()
      })
    } catch (error) {
      watching = false
      failAll(error as Error)
    }
  }
  return {
    get writableLength() {
      return bytes
    },
    write: (chunk, callback) => {
      const data = Buffer.from(chunk)
      waiting.push({ data, callback })
      bytes += data.length
      if (waiting.length > 1) return false // behind others: the watch writes it in its turn
      if (flush()) return true
      arm()
      return false
    },
    on: () => undefined // errors come to each line's callback, never as an event
  }
}

/**
 * Guards process.stderr when (if ever) it is made: `listener` hears its 'error' events (a write to a reader that
 * has gone), which would otherwise end soad. Making it here would load what this module spares a run.
 */
export const onStderrError = (listener: (error: Error) => void): void => {
  const made = Object.getOwnPropertyDescriptor(process, "stderr")
  if (made?.get === undefined || made.configurable !== true) return process.stderr.on("error", listener) as unknown as void
  Object.defineProperty(process, "stderr", {
    configurable: true,
    enumerable: made.enumerable ?? false,
    get() {
      const stream = made.get!.call(process) as NodeJS.WriteStream
      Object.defineProperty(process, "stderr", made)
      stream.on("error", listener)
      return stream
    }
  })
}

let made: LineSink | undefined

/**
 * soad's stderr (fd 2): a file or a terminal written at once, a pipe or socket without blocking. It needs the
 * native addon, which soad's run has loaded before its first line; until something has loaded it (a program on
 * soad/testing's fakes never does, and must not try), process.stderr.
 */
export const stderr = (): LineSink => {
  if (made !== undefined) return made
  const n = nativeIfLoaded()
  if (n === undefined) return process.stderr
  try {
    const stat = Fs.fstatSync(2)
    const stream = stat.isFIFO() || stat.isSocket()
    if (stream) n.nonBlocking(2)
    made = fdSink(2, !stream, (fd, callback) => void n.watchWritable(fd, callback))
  } catch {
    made = process.stderr // no fd 2
  }
  return made
}
