/**
 * The client end of the control socket, in plain Node: one request and its answer, or a `logs` request and the
 * lines that follow it. The control commands run on a light path that loads no Effect (cli/light.ts: `soad status`
 * answers in about the time Node takes to start); control.ts wraps these for Effect callers.
 *
 * @internal
 */
import type { LogMessage, LogsRequest, Request, Response } from "./controlProtocol.js"
import { printable } from "./terminal.js"
import { net } from "../os/lazyNet.js"

/** Why a control socket did not answer: no soad behind it (`none`), not ours to use (`denied`), or another fault. */
export class ControlFailure extends Error {
  constructor(message: string, readonly reason: "none" | "denied" | "other" = "other") {
    super(message)
  }
}

/** A connection's error in the words the client prints. */
export const connectionFailure = (path: string, error: NodeJS.ErrnoException): ControlFailure =>
  error.code === "ENOENT" || error.code === "ECONNREFUSED"
    ? new ControlFailure(
      `no soad is running with control socket ${path} (give its --control PATH, --name NAME or -c FILE)`,
      "none"
    )
    : error.code === "EACCES"
    ? new ControlFailure(`${path}: permission denied: only soad's user may control it`, "denied")
    : new ControlFailure(`${path}: ${error.message}`)

/** Sends one request to the soad whose control socket is at `path`; its answer. Aborting closes the connection. */
export const request = (path: string, body: Request, signal?: AbortSignal): Promise<Response> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(new ControlFailure(`${path}: interrupted`))
    const socket = net().connect(path)
    const chunks: Array<string> = []
    const abort = () => {
      socket.destroy()
      reject(new ControlFailure(`${path}: interrupted`))
    }
    signal?.addEventListener("abort", abort, { once: true })
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(JSON.stringify(body) + "\n"))
    socket.on("data", (chunk: string) => chunks.push(chunk))
    socket.on("end", () => {
      signal?.removeEventListener("abort", abort)
      try {
        resolve(JSON.parse(chunks.join("")) as Response)
      } catch {
        reject(new ControlFailure(`${path}: no answer from soad`))
      }
    })
    socket.on("error", (error: NodeJS.ErrnoException) => {
      signal?.removeEventListener("abort", abort)
      reject(connectionFailure(path, error))
    })
  })

/** Where `soad logs` writes: the lines on `out`, what the client says about them (lines missed) on `err`. */
export interface LogsOutput {
  readonly out: NodeJS.WritableStream
  readonly err: NodeJS.WritableStream
}

/**
 * A line of output as `soad logs` prints it: as the app wrote it for one service (a piece of a cut line without
 * its newline, so the pieces join), `[service] line` for every service's (a continuing piece `[service]+ …`, as on
 * soad's stderr: pieces of two services may come between each other). Control characters other than TAB are
 * U+FFFD: the app chose them, the terminal is the operator's.
 */
export const shownLine = (
  message: Extract<LogMessage, { readonly line: string }>,
  continuing: boolean
): string =>
  message.service === undefined
    ? printable(message.line) + (message.continued === true ? "" : "\n")
    : `[${message.service}]${continuing ? "+" : ""} ${printable(message.line)}\n`

/**
 * Sends a `logs` request and writes what comes back to `output` until soad ends it (at once without `follow`),
 * reading no faster than `output.out` takes it. Rejects with the refusal (an unknown service) or the connection's
 * error; resolves when soad ends the answer, the reader of `output.out` goes away, or `signal` aborts.
 */
export const logs = (path: string, body: LogsRequest, output: LogsOutput, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted === true) return resolve()
    const socket = net().connect(path)
    let buffer = ""
    let answered = false
    let finished = false
    /** Services whose latest piece was cut: their next piece continues it. */
    const continuing = new Set<string>()
    const finish = (failure?: ControlFailure) => {
      if (finished) return
      finished = true
      socket.destroy()
      signal?.removeEventListener("abort", onAbort)
      if (failure === undefined) resolve()
      else reject(failure)
    }
    const onAbort = () => finish()
    signal?.addEventListener("abort", onAbort, { once: true })
    const onLine = (text: string) => {
      if (!answered) {
        answered = true
        const response = JSON.parse(text) as Response
        if (!response.ok) finish(new ControlFailure(response.error))
        return
      }
      const message = JSON.parse(text) as LogMessage
      if ("dropped" in message) {
        output.err.write(`soad: ${message.dropped} line${message.dropped === 1 ? "" : "s"} missed: this reader was too slow\n`)
        return
      }
      const key = message.service ?? ""
      const line = shownLine(message, continuing.has(key))
      if (message.continued === true) continuing.add(key)
      else continuing.delete(key)
      if (!output.out.write(line)) {
        socket.pause()
        output.out.once("drain", () => socket.resume())
      }
    }
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(JSON.stringify(body) + "\n"))
    socket.on("data", (chunk: string) => {
      buffer += chunk
      try {
        for (let newline = buffer.indexOf("\n"); newline >= 0 && !finished; newline = buffer.indexOf("\n")) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          onLine(line)
        }
      } catch {
        finish(new ControlFailure(`${path}: soad's answer cannot be read`))
      }
    })
    socket.on("end", () => finish(answered ? undefined : new ControlFailure(`${path}: no answer from soad`)))
    socket.on("error", (error: NodeJS.ErrnoException) => finish(connectionFailure(path, error)))
    // The reader went away (`soad logs -f | head`): that ends the command, quietly.
    output.out.once("error", () => finish())
  })
