/**
 * The datagrams an app sends on its NOTIFY_SOCKET (sd_notify): `KEY=value` lines, of which soad acts on READY=1,
 * STATUS=…, STOPPING=1 and EXTEND_TIMEOUT_USEC=…; other lines are skipped, as systemd skips what it does not know.
 * One pass over the text, bounded by the datagram (the addon receives at most `maxBytes`; longer input is cut here
 * too): linear however the lines are shaped.
 *
 * @internal
 */

/** The longest datagram soad reads: systemd's NOTIFY_BUFFER_MAX; the rest of a longer one is cut (native/notify.c). */
export const maxBytes = 4096

/** What one line of a datagram asks, among those soad acts on. */
export type Notice =
  | { readonly _tag: "Ready" }
  | { readonly _tag: "Status"; readonly text: string }
  | { readonly _tag: "Stopping" }
  | { readonly _tag: "ExtendTimeout"; readonly usec: number }

/** 2^64 − 1, the largest EXTEND_TIMEOUT_USEC systemd takes (safe_atou64); a longer or larger value is ignored. */
const maxU64 = "18446744073709551615"

/** A decimal u64 as systemd reads it (digits only, at most 2^64 − 1), as a number; undefined otherwise. */
const u64 = (value: string): number | undefined => {
  if (value.length === 0 || value.length > maxU64.length) return undefined
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 48 || c > 57) return undefined
  }
  if (value.length === maxU64.length && value > maxU64) return undefined
  return Number(value)
}

/** The notice of one line (`KEY=value`, or a bare `KEY`), if soad acts on it. */
const notice = (key: string, value: string | undefined): Notice | undefined => {
  switch (key) {
    case "READY":
      return value === "1" ? { _tag: "Ready" } : undefined
    case "STATUS":
      return value === undefined ? undefined : { _tag: "Status", text: value }
    case "STOPPING":
      return value === "1" ? { _tag: "Stopping" } : undefined
    case "EXTEND_TIMEOUT_USEC": {
      const usec = value === undefined ? undefined : u64(value)
      return usec === undefined ? undefined : { _tag: "ExtendTimeout", usec }
    }
    default:
      return undefined
  }
}

/** The notices of a datagram, in the order of its lines (at most its first `maxBytes` characters are read). */
export const parse = (message: string): Array<Notice> => {
  const text = message.length > maxBytes ? message.slice(0, maxBytes) : message
  const notices: Array<Notice> = []
  let start = 0
  for (;;) {
    const newline = text.indexOf("\n", start)
    const end = newline < 0 ? text.length : newline
    const line = text.slice(start, end)
    const eq = line.indexOf("=")
    const found = eq < 0 ? notice(line, undefined) : notice(line.slice(0, eq), line.slice(eq + 1))
    if (found !== undefined) notices.push(found)
    if (newline < 0) return notices
    start = newline + 1
  }
}
