/**
 * Human-readable figures for log lines.
 *
 * @internal
 */

/** Seconds with a precision that suits the size: "0.25 s", "4.2 s", "62 s", "1 h 2 min". */
export const seconds = (millis: number): string => {
  const s = millis / 1000
  if (s < 1) return `${Number(s.toFixed(3))} s`
  if (s < 10) return `${Number(s.toFixed(1))} s`
  if (s < 3600) return `${Math.round(s)} s`
  const h = Math.floor(s / 3600)
  return `${h} h ${Math.round((s - h * 3600) / 60)} min`
}

/** Milliseconds with one decimal: "2.1 ms". */
export const millis = (ms: number): string => `${Number(ms.toFixed(1))} ms`

/** How a process ended: "code 1", "signal SIGTERM". */
export const exit = (status: { readonly code: number | null; readonly signal: string | null }): string =>
  status.signal !== null ? `signal ${status.signal}` : status.code !== null ? `code ${status.code}` : "unknown status"
