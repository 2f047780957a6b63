/**
 * Reading a control socket's request: one line of JSON from a peer. The peer is soad's own user or root, but a
 * stuck, slow or careless one must cost soad little: the line is read chunk by chunk with each byte looked at
 * once, at most `maxRequestBytes` of it are kept, and what follows it is never read into memory.
 *
 * @internal
 */
import type { LogsRequest, Request } from "./controlProtocol.js"

/**
 * The longest request line soad reads. A request is a flat JSON object of about 100 bytes (service names are at
 * most 64 characters); 4 KiB keeps JSON.parse of any line under 0.1 ms under soad's --lite-mode (measured: 64 KiB
 * of object keys took 1.4 ms).
 */
export const maxRequestBytes = 4 * 1024

/** What a peer has sent so far: not a whole line yet, the line, or more than a request may be. */
export type Read =
  | { readonly _tag: "More" }
  | { readonly _tag: "Line"; readonly line: string }
  | { readonly _tag: "TooLong" }

const more: Read = { _tag: "More" }
const tooLong: Read = { _tag: "TooLong" }

/**
 * A reader of one request line: give it each chunk as it comes until it answers a Line or TooLong (then stop
 * reading). Each chunk is searched once for its newline, never what came before it; bytes that are not UTF-8
 * become U+FFFD.
 */
export const lineReader = (max: number = maxRequestBytes): (chunk: Buffer) => Read => {
  const parts: Array<Buffer> = []
  let kept = 0
  return (chunk) => {
    const newline = chunk.indexOf(10)
    const end = newline < 0 ? chunk.length : newline
    if (kept + end > max) return tooLong
    kept += end
    parts.push(chunk.subarray(0, end))
    return newline < 0 ? more : { _tag: "Line", line: Buffer.concat(parts, kept).toString("utf8") }
  }
}

/**
 * The most brackets (`[` and `{`) a request line may have. A request is a flat object (one brace) and service
 * names have none; a deeper line is none, before JSON.parse walks its nesting (4 KiB of `[` took it 0.5 ms under
 * --lite-mode, measured).
 */
const maxBrackets = 16

/** Whether `line` has more than `maxBrackets` brackets (each found by V8's indexOf, at most 17 times). */
const tooNested = (line: string): boolean => {
  let brackets = 0
  for (const open of ["[", "{"]) {
    for (let at = line.indexOf(open); at >= 0; at = line.indexOf(open, at + 1)) if (++brackets > maxBrackets) return true
  }
  return false
}

/** The request a line asks for, or undefined. */
export const parseRequest = (line: string): Request | LogsRequest | undefined => {
  if (tooNested(line)) return undefined
  try {
    const value = JSON.parse(line) as { command?: unknown; service?: unknown; lines?: unknown; follow?: unknown } | null
    if (value === null || typeof value !== "object") return undefined
    if (value.command === "status" || value.command === "reload") return { command: value.command }
    if (value.command === "logs" && (value.service === undefined || typeof value.service === "string")) {
      const lines = Number.isSafeInteger(value.lines) && (value.lines as number) >= 0 ? value.lines as number : 10
      return { command: "logs", service: value.service, lines, follow: value.follow === true }
    }
    if (
      (value.command === "wake" || value.command === "sleep" || value.command === "restart") &&
      typeof value.service === "string"
    ) {
      return { command: value.command, service: value.service }
    }
  } catch {
    // not JSON
  }
  return undefined
}
