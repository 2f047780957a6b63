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

const requestLine = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/
const headerLine = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/

/** Looks at the first bytes of a held connection (as peeked, not consumed). */
export const classify = (bytes: Uint8Array): Verdict => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")
  const end = /\r?\n\r?\n/.exec(text)
  if (end === null) {
    // A first line that cannot become an HTTP/1.x request (TLS, HTTP/2's preface) will never be one.
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
    if (header === null) return { _tag: "Wait" } // not a head soad understands: the app decides
    const name = header[1]!.toLowerCase()
    if (name === "upgrade") return { _tag: "Wait" } // a WebSocket (or h2c) handshake is no navigation
    if (name === "accept" && /(^|[\s,])text\/html(\s*[;,]|\s*$)/i.test(header[2]!)) html = true
  }
  return html ? { _tag: "Page", method } : { _tag: "Wait" }
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
