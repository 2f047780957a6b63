/**
 * A time as ISO 8601 in UTC, as `Date.prototype.toISOString` writes it, from the UTC fields alone. Node's
 * toISOString asks ICU for the host's time zone (V8 formats its date strings through the local time-zone cache),
 * which maps about 1 MB of ICU's zone data into every soad that logs a line (RSS of `node -e` with and without
 * one call, measured by hand); this does not.
 *
 * @internal
 */

const two = (n: number): string => (n < 10 ? `0${n}` : `${n}`)
const three = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`)

/** `date` as `YYYY-MM-DDTHH:MM:SS.mmmZ`; years outside 0–9999 as toISOString writes them. */
export const isoTime = (date: Date): string => {
  const year = date.getUTCFullYear()
  if (!(year >= 0 && year <= 9999)) return date.toISOString() // also throws, as it does, for an invalid date
  const y = `${year}`.padStart(4, "0")
  return `${y}-${two(date.getUTCMonth() + 1)}-${two(date.getUTCDate())}T${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}.${three(date.getUTCMilliseconds())}Z`
}
