/**
 * What `soad status` prints: a summary line, then a table with a row per service (beyond `fold` services, only
 * those not stopped unless asked for all), then, for the services asked for by name, their socket files' modes and
 * owners. Plain functions of the status answer: the control commands' light path prints them without Effect.
 *
 * @internal
 */
import type { ServiceReport, SocketFileReport } from "./controlProtocol.js"
import { printable } from "./terminal.js"

/** A duration in seconds as the status table shows it: "42s", "4m10s", "3h05m"; "-" for none. */
export const seconds = (value: number | null): string => {
  if (value === null) return "-"
  if (value < 60) return `${Math.round(value)}s`
  if (value < 3600) return `${Math.floor(value / 60)}m${String(Math.round(value % 60)).padStart(2, "0")}s`
  return `${Math.floor(value / 3600)}h${String(Math.floor((value % 3600) / 60)).padStart(2, "0")}m`
}

/** Memory as the status table shows it: "46M", "1.2G"; "-" for none. */
export const bytes = (value: number | null): string =>
  value === null ? "-" : value >= 1e9 ? `${(value / 1e9).toFixed(1)}G` : `${Math.round(value / 1e6)}M`

/** RAM-time in MB·h (GB·h from 1,000 MB·h). */
export const ramTime = (byteSeconds: number): string => {
  const mbHours = byteSeconds / 1e6 / 3600
  if (mbHours >= 1000) return `${(mbHours / 1000).toFixed(1)} GB·h`
  const shown = mbHours >= 10 ? String(Math.round(mbHours)) : mbHours >= 1 ? mbHours.toFixed(1) : String(Number(mbHours.toPrecision(2)))
  return `${shown} MB·h`
}

/** The longest app STATUS= text the table shows; the rest is cut to "…" (`--json` has it whole). */
const appStatusWidth = 40

/**
 * An app's STATUS= text as the table shows it: the app chose it, so control characters (a terminal escape, a
 * carriage return) become U+FFFD before it reaches the operator's terminal (TAB too: it would break the columns),
 * and a long text is cut.
 */
export const shownAppStatus = (text: string): string => {
  const safe = printable(text).replaceAll("\t", "\ufffd")
  const chars = [...safe]
  return chars.length > appStatusWidth ? `${chars.slice(0, appStatusWidth - 1).join("")}…` : safe
}

const sum = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0)

/** Whether a service has an app running (a hand-off or proxy app, or accept-mode instances). */
const running = (s: ServiceReport): boolean => s.pid !== null || (s.instances ?? 0) > 0

/** Lines padded into columns, the last column left as it is. */
const columns = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) => row.map((cell, column) => column === row.length - 1 ? cell : cell.padEnd(widths[column]!)).join("  ").trimEnd())
    .join("\n")
}

/**
 * The status table: one row per service, PEAK (the app's peak memory while it ran) and SAVED (that peak × the time
 * it was stopped), the last error, and a total row of the rows shown. An accept-mode service shows its instances
 * after its state; APP STATUS (the STATUS= of `--ready notify` apps) is there only when an app sent one.
 */
export const table = (services: ReadonlyArray<ServiceReport>): string => {
  const withAppStatus = services.some((s) => s.app_status !== undefined)
  /** The APP STATUS cell, or none when no app sent a STATUS=. */
  const appStatus = (cell: string): ReadonlyArray<string> => withAppStatus ? [cell] : []
  return columns([
    ["SERVICE", "STATE", ...appStatus("APP STATUS"), "PID", "UPTIME", "IDLE", "MEMORY", "PEAK", "SAVED", "STARTS", "LISTEN", "LAST ERROR"],
    ...services.map((s) => [
      s.name,
      s.instances === undefined ? s.state : `${s.state} (${s.instances} instance${s.instances === 1 ? "" : "s"})`,
      ...appStatus(s.app_status === undefined ? "-" : shownAppStatus(s.app_status)),
      s.pid === null ? "-" : String(s.pid),
      seconds(s.uptime_s),
      seconds(s.idle_s),
      bytes(s.memory_bytes),
      bytes(s.peak_memory_bytes),
      ramTime(s.saved_byte_seconds),
      String(s.activations),
      s.listeners.join(","),
      s.last_error === null ? "-" : `${seconds(s.last_error_age_s)} ago: ${s.last_error}`
    ]),
    [
      "total",
      `${services.filter(running).length} running`,
      ...appStatus(""),
      "",
      "",
      "",
      bytes(sum(services.map((s) => s.memory_bytes ?? 0))),
      "",
      ramTime(sum(services.map((s) => s.saved_byte_seconds))),
      String(sum(services.map((s) => s.activations))),
      "",
      ""
    ]
  ])
}

/** The order the summary counts states in: what runs first, what fails last. */
const stateOrder = ["running", "starting", "stopping", "stopped", "failing", "failed"]

/**
 * One line for a soad's services: `12 services: 3 running, 8 stopped, 1 failing; 107M in use, 264 MB·h saved`
 * (states with no service left out).
 */
export const summary = (services: ReadonlyArray<ServiceReport>): string => {
  const counts = new Map<string, number>()
  for (const s of services) counts.set(s.state, (counts.get(s.state) ?? 0) + 1)
  const states = [...counts.keys()].sort((a, b) => {
    const at = (state: string) => stateOrder.includes(state) ? stateOrder.indexOf(state) : stateOrder.length
    return at(a) - at(b)
  })
  const memory = sum(services.map((s) => s.memory_bytes ?? 0))
  return `${services.length} service${services.length === 1 ? "" : "s"}` +
    (states.length === 0 ? "" : `: ${states.map((state) => `${counts.get(state)} ${state}`).join(", ")}`) +
    `; ${bytes(memory)} in use, ${ramTime(sum(services.map((s) => s.saved_byte_seconds)))} saved`
}

/**
 * Whether `name` matches `pattern`: `*` stands for any characters, `?` for one, anything else for itself. Greedy
 * with one backtrack point (the latest `*`): O(name × pattern) at worst, for names of at most 64 characters.
 */
export const matches = (pattern: string, name: string): boolean => {
  let p = 0
  let n = 0
  let star = -1
  let resume = 0
  while (n < name.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === name[n])) {
      p++
      n++
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++
      resume = n
    } else if (star >= 0) {
      p = star + 1
      n = ++resume
    } else return false
  }
  while (p < pattern.length && pattern[p] === "*") p++
  return p === pattern.length
}

/** How many services a table shows before it folds the stopped ones away (unless `--all` or a pattern). */
export const fold = 50

/** What `soad status` was asked for: every service (`all`), or those matching any of `patterns`. */
export interface ViewOptions {
  readonly all: boolean
  readonly patterns: ReadonlyArray<string>
}

/** The services a view shows, and how many stopped ones it leaves out. */
export const shown = (
  services: ReadonlyArray<ServiceReport>,
  options: ViewOptions
): { readonly rows: ReadonlyArray<ServiceReport>; readonly folded: number } => {
  if (options.patterns.length > 0) {
    return { rows: services.filter((s) => options.patterns.some((pattern) => matches(pattern, s.name))), folded: 0 }
  }
  if (options.all || services.length <= fold) return { rows: services, folded: 0 }
  const rows = services.filter((s) => s.state !== "stopped" || running(s))
  return { rows, folded: services.length - rows.length }
}

/** A socket file's mode and owner as the table shows them; what is wrong with it, if anything. */
const socketCells = (file: SocketFileReport): ReadonlyArray<string> =>
  "problem" in file
    ? [file.problem === "gone" ? "gone: no file at this path" : "replaced: the file there is not soad's socket", "", ""]
    : [file.mode, file.user ?? String(file.uid), file.group ?? String(file.gid)]

/** The socket files of these services: path, service, mode, owner and group as they are now; "" if none. */
export const socketFiles = (services: ReadonlyArray<ServiceReport>): string => {
  const rows = services.flatMap((s) => (s.sockets ?? []).map((file) => [printable(file.path), s.name, ...socketCells(file)]))
  return rows.length === 0 ? "" : columns([["SOCKET FILE", "SERVICE", "MODE", "OWNER", "GROUP"], ...rows])
}

/**
 * `soad status` of one soad: the summary line of all its services, the table of those shown, a line saying how many
 * stopped ones were folded away and how to see them, and, when services were asked for by name, their socket
 * files. `heading` (the instance's name, when several soads answer) starts the summary line.
 */
export const view = (services: ReadonlyArray<ServiceReport>, options: ViewOptions, heading?: string): string => {
  const { folded, rows } = shown(services, options)
  const parts = [`${heading === undefined ? "" : `${heading}: `}${summary(services)}`, table(rows)]
  if (folded > 0) {
    parts.push(
      `(${folded} stopped service${folded === 1 ? "" : "s"} not shown: soad status --all shows every one, ` +
        `soad status 'NAME*' those that match)`
    )
  }
  const files = options.patterns.length > 0 ? socketFiles(rows) : ""
  if (files !== "") parts.push("", files)
  return parts.join("\n")
}
