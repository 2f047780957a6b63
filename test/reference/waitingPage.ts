/**
 * The waiting page's first classifier, with regular expressions, kept as the reference model of the property
 * tests (the linear one in src/modes/waitingPage.ts must give the same verdict on every input) and for the
 * benchmark's "before" figure: its header pattern `/^(…):[ \t]*(.*?)[ \t]*$/` backtracks O(n²) on a value of many
 * spaces followed by a non-space (a 16 KiB head took 1 s in plain Node, about 3 s under soad's --lite-mode).
 */
import type { Verdict } from "../../src/modes/waitingPage.js"

const maxHead = 16 * 1024
const requestLine = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/
const headerLine = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/

/** The classifier as it was (commit ef607f7): quadratic on the input above; use it only on small inputs. */
export const classify = (bytes: Uint8Array): Verdict => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")
  const end = /\r?\n\r?\n/.exec(text)
  if (end === null) {
    const first = text.split(/\r?\n/)[0]!
    const hopeless = text.includes("\n") ? !requestLine.test(first.replace(/\r$/, "")) : /[^\x21-\x7e ]/.test(first)
    return hopeless || bytes.byteLength >= maxHead ? { _tag: "Wait" } : { _tag: "Partial" }
  }
  const [first, ...headers] = text.slice(0, end.index).split(/\r?\n/)
  const request = requestLine.exec(first!)
  if (request === null) return { _tag: "Wait" }
  const method = request[1]
  if (method !== "GET" && method !== "HEAD") return { _tag: "Wait" }
  let html = false
  for (const line of headers) {
    const header = headerLine.exec(line)
    if (header === null) return { _tag: "Wait" }
    const name = header[1]!.toLowerCase()
    if (name === "upgrade") return { _tag: "Wait" }
    if (name === "accept" && /(^|[\s,])text\/html(\s*[;,]|\s*$)/i.test(header[2]!)) html = true
  }
  return html ? { _tag: "Page", method } : { _tag: "Wait" }
}
