/**
 * The waiting page of proxy mode (`--waiting-page SECONDS`): which held request gets it, the page, and the HTTP
 * response around it. A request that has waited SECONDS for a starting app is looked at (its bytes peeked, left
 * for the app): only a complete HTTP/1.x request head, method GET or HEAD, whose Accept names text/html (a browser's
 * navigation) is answered with the page; anything else (a POST, a fetch, a partial head, TLS, HTTP/2) waits for the
 * app as before. The page reloads itself once the app is up: its script fetches the same URL with `Accept: *\/*`,
 * which soad does not answer but holds until the app is ready, then reloads; without JavaScript a meta refresh
 * tries again every few seconds.
 *
 * @internal
 */

/** The most bytes of a request head that are looked at (the native peek's limit): a longer head just waits. */
export const maxHead = 16 * 1024

/** The largest `--waiting-page-file` soad takes. */
export const maxFileBytes = 64 * 1024

/** In a `--waiting-page-file`, this is replaced by the service's name, HTML-escaped. */
export const servicePlaceholder = "{{service}}"

/** What to do with a held request after looking at it. */
export type Verdict =
  /** A browser navigation: answer it with the page (HEAD: without the body). */
  | { readonly _tag: "Page"; readonly method: "GET" | "HEAD" }
  /** Not one: it waits for the app; no need to look again. */
  | { readonly _tag: "Wait" }
  /** The head is not complete yet: look again later. */
  | { readonly _tag: "Partial" }

/*
 * A client chooses these bytes, so the classifier reads each of them a bounded number of times: with V8's own
 * string functions (indexOf, replaceAll, toLowerCase, trimStart), with loops of its own over header names, and with
 * patterns of a single character class, which test one character at each place and cannot backtrack. The first
 * version matched header lines with `/^(name):[ \t]*(.*?)[ \t]*$/`, which backtracked O(n²) on a value of many spaces
 * followed by a non-space: a 16 KiB head took 1-3 s of soad's only thread. Under soad's --lite-mode a loop of
 * JavaScript costs about 30-40 ns a byte (V8 only interprets it), so the long runs (values, request lines) are
 * left to V8's functions, and the loops only read names (`BENCH_ONLY=parsers npm run bench`: under 1 ms a head).
 * A head is read as latin1 (one character per byte) as the first version read it, and every verdict is the same as
 * its verdict (the property tests compare the two on every kind of head: test/unit/waitingPage.test.ts).
 */

const CR = 13
const COLON = 58

/** The characters of an HTTP token (RFC 9110 tchar: a method, a header's name), as a table by byte. */
const tchar = new Uint8Array(256)
for (const c of "!#$%&'*+.^_`|~-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") tchar[c.charCodeAt(0)] = 1

/** White space as JavaScript has it (`\s`, trimStart) among latin1: TAB, LF, VT, FF, CR, space, NBSP. */
const space = new Uint8Array(256)
for (const c of "\t\n\v\f\r \u00a0") space[c.charCodeAt(0)] = 1

/** A character that is not in an HTTP token. */
const notToken = /[^!#$%&'*+.^_`|~0-9A-Za-z-]/

/** A character other than printable ASCII. */
const notPrintable = /[^ -~]/

/** White space. */
const whiteSpace = /\s/

/** The method of a request line `METHOD TARGET HTTP/1.x`, or undefined if it is not one. */
const requestMethod = (line: string): string | undefined => {
  const gap = line.indexOf(" ")
  if (gap <= 0 || line.length - gap < 11) return undefined // a method, a space, a target, " HTTP/1.x"
  const version = line.slice(line.length - 9)
  if (version !== " HTTP/1.1" && version !== " HTTP/1.0") return undefined
  const method = line.slice(0, gap)
  return notToken.test(method) || whiteSpace.test(line.slice(gap + 1, line.length - 9)) ? undefined : method
}

/** Whether an incomplete head could still become an HTTP/1.x request: its first line, or (none yet) printable ASCII. */
const hopeful = (text: string): boolean => {
  const lf = text.indexOf("\n")
  if (lf < 0) return !notPrintable.test(text)
  let stop = lf
  if (stop > 0 && text.charCodeAt(stop - 1) === CR) stop--
  if (stop > 0 && text.charCodeAt(stop - 1) === CR) stop-- // a second one, as the first version allowed it
  return requestMethod(text.slice(0, stop)) !== undefined
}

/**
 * Whether the `text/html` at `at` in an Accept value `lower[start, end)` (lower case) is a media type: at the
 * value's start or after white space or a comma, followed by white space up to a `;`, a `,` or the value's end.
 */
const mediaType = (lower: string, start: number, at: number, end: number): boolean => {
  if (at > start && lower[at - 1] !== "," && space[lower.charCodeAt(at - 1)] !== 1) return false
  const rest = lower.slice(at + 9, end).trimStart() // the white space after one match holds no other one
  return rest === "" || rest[0] === ";" || rest[0] === ","
}

const wait: Verdict = { _tag: "Wait" }
const partial: Verdict = { _tag: "Partial" }

/** Looks at the first bytes of a held connection (as peeked, not consumed). */
export const classify = (bytes: Uint8Array): Verdict => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")
  // The head ends at its first blank line: the first LF followed by LF or CR LF (a CR before that LF is its own).
  const bare = text.indexOf("\n\n")
  const crlf = text.indexOf("\n\r\n")
  const blank = bare < 0 ? crlf : crlf < 0 ? bare : Math.min(bare, crlf)
  if (blank < 0) {
    // A first line that cannot become an HTTP/1.x request (TLS, HTTP/2's preface) will never be one.
    return !hopeful(text) || bytes.byteLength >= maxHead ? wait : partial
  }
  const end = blank > 0 && text.charCodeAt(blank - 1) === CR ? blank - 1 : blank
  const head = text.slice(0, end)
  // A CR not before a LF is in no line soad understands (a request line's or a header's): the app decides.
  if (head.replaceAll("\r\n", "").includes("\r")) return wait
  const first = head.indexOf("\n")
  if (first < 0) return wait // no header, so no Accept
  const method = requestMethod(head.slice(0, head.charCodeAt(first - 1) === CR ? first - 1 : first))
  if (method !== "GET" && method !== "HEAD") return wait
  const lower = head.toLowerCase() // latin1 stays latin1, each character in its place
  let html = false
  let found = -1 // where `text/html` is next in the head: looked for once for the whole head, never once per header
  for (let start = first + 1; start <= end;) {
    let colon = start
    while (tchar[bytes[colon]!] === 1) colon++ // stops at the head's end at the latest: its CR or LF is no tchar
    if (colon === start || bytes[colon] !== COLON) return wait // not a head soad understands: the app decides
    const lf = head.indexOf("\n", colon)
    const name = colon - start
    if (name === 7 && lower.startsWith("upgrade", start)) return wait // a WebSocket (or h2c) handshake is no navigation
    if (name === 6 && !html && lower.startsWith("accept", start)) {
      const stop = lf < 0 ? end : bytes[lf - 1] === CR ? lf - 1 : lf
      if (found < colon) found = lower.indexOf("text/html", colon)
      while (found >= 0 && found < stop) {
        if (mediaType(lower, colon + 1, found, stop)) {
          html = true
          break
        }
        found = lower.indexOf("text/html", found + 9)
      }
      if (found < 0) found = end // no more: never looked for again
    }
    start = lf < 0 ? end + 1 : lf + 1
  }
  return html ? { _tag: "Page", method } : wait
}

/** Text made safe inside HTML. */
export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

/** The page soad serves: the service's name, no external resources, back to the app as soon as it is up. */
export const defaultPage = (service: string, retryAfter: number): string => {
  const name = escapeHtml(service)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${name} is starting</title>
<noscript><meta http-equiv="refresh" content="${retryAfter}"></noscript>
<style>
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;font:16px/1.5 system-ui,sans-serif;color:#222;background:#f6f6f6}
main{text-align:center;padding:2em}
.dots::after{content:"";animation:dots 1.5s steps(4) infinite}
@keyframes dots{0%{content:""}25%{content:"."}50%{content:".."}75%{content:"..."}}
@media (prefers-color-scheme:dark){body{color:#eee;background:#1b1b1b}}
</style>
</head>
<body>
<main id="soad-waiting-page">
<h1>${name} is starting<span class="dots"></span></h1>
<p>This page opens the app by itself as soon as it is up.</p>
</main>
<script>
(function () {
  // soad holds this request (it is no navigation) until the app is up; then the page is the app's.
  function wait() {
    fetch(location.href, { headers: { Accept: "*/*" }, cache: "no-store", credentials: "same-origin" })
      .then(function () { location.reload() }, function () { setTimeout(wait, 2000) })
  }
  wait()
})()
</script>
</body>
</html>
`
}

/** A `--waiting-page-file`'s text with the service's name (HTML-escaped) in place of the placeholder. */
export const customPage = (template: string, service: string): string =>
  template.split(servicePlaceholder).join(escapeHtml(service))

/** The whole response: 503 with Retry-After, no caching, the connection closed after it; HEAD without the body. */
export const response = (method: "GET" | "HEAD", page: string, retryAfter: number): Uint8Array => {
  const body = Buffer.from(page, "utf8")
  const head = [
    "HTTP/1.1 503 Service Unavailable",
    "Content-Type: text/html; charset=utf-8",
    `Content-Length: ${body.byteLength}`,
    `Retry-After: ${retryAfter}`,
    "Cache-Control: no-store",
    "Connection: close",
    "",
    ""
  ].join("\r\n")
  return method === "HEAD" ? Buffer.from(head, "latin1") : Buffer.concat([Buffer.from(head, "latin1"), body])
}
