/**
 * The status page `--metrics ADDR` serves at `/`: a summary (services by state, the RAM stopped apps save now and
 * have saved, starts in the last 24 hours), two charts of the last 24 hours (starts, and RAM saved) drawn as
 * inline SVG on the server, and a table with a row per service (failing first). One HTML document with no external
 * resource and no script: a meta refresh reloads it every few seconds.
 *
 * Every text an app or a client could have chosen (an app's STATUS=, a last error that quotes a command or an
 * app's words) is stripped of control characters (U+FFFD, as on the terminal) and HTML-escaped; names and the
 * host name are escaped too. The cost is linear in the services: one pass to count, one to group by state, one to
 * write the rows; the charts read the bounded history only.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Os from "node:os"
import * as Monotonic from "../core/monotonic.js"
import { bytes, ramTime, seconds } from "./control.js"
import { Registry, type State, type Status, statusesOf } from "../Registry.js"
import * as Format from "./format.js"
import type * as History from "./history.js"
import { printable } from "./terminal.js"
import { escapeHtml } from "../modes/waitingPage.js"

/** How often the page reloads itself (s): states change within seconds; a render of 1,000 services is cheap. */
export const refreshSeconds = 10

/** The longest last error a row shows (`soad status --json` has it whole). */
const errorWidth = 160

/** The longest app STATUS= a row shows: twice the terminal table's, a page has the room. */
const appStatusWidth = 80

/** What the page is made from. */
export interface Input {
  readonly statuses: ReadonlyArray<Status>
  readonly history: History.Snapshot
  /** Clock ms, the statuses' clock. */
  readonly now: number
  /** The machine's name, for the title. */
  readonly host: string
}

/**
 * Text an app, a client or the operator chose, for HTML: control characters are U+FFFD (as on the terminal), a TAB a
 * space, then it is escaped.
 */
export const text = (value: string): string => escapeHtml(printable(value).replaceAll("\t", " "))

/** `value` cut to `width` characters (code points: a pair is never split), with "…" for the rest. */
const cut = (value: string, width: number): string => {
  const chars = [...value.slice(0, width * 2 + 1)]
  return chars.length > width ? `${chars.slice(0, width - 1).join("")}…` : value
}

/** The table's order: what needs a look first. */
const order: ReadonlyArray<State> = ["failed", "failing", "starting", "running", "stopping", "stopped"]

/** A service that runs an app (or, accept mode, instances) now. */
const isRunning = (status: Status): boolean => status.pid !== undefined || (status.instances ?? 0) > 0

/** A time before `now` as "4m10s ago". */
const ago = (now: number, at: number): string => `${seconds(Math.max(0, now - at) / 1000)} ago`

/** A cold start: "230 ms", "4.2 s". */
const coldStart = (ms: number): string => ms < 1000 ? Format.millis(Math.round(ms)) : Format.seconds(ms)

/** One row of the table. */
const row = (status: Status, now: number): string => {
  const instances = status.instances === undefined
    ? ""
    : ` (${status.instances} instance${status.instances === 1 ? "" : "s"})`
  const appStatus = status.appStatus === undefined ? "" : ` <bdi class=app>${text(cut(status.appStatus, appStatusWidth))}</bdi>`
  const start = status.lastStart
  const error = status.lastError === undefined
    ? "-"
    : `${ago(now, status.lastError.at)}: <bdi>${text(cut(status.lastError.message, errorWidth))}</bdi>`
  return `<tr class=${status.state}><td><bdi>${text(status.name)}</bdi>` +
    `<td><span class=st>${status.state}</span>${instances}${appStatus}` +
    `<td>${start === undefined ? "-" : ago(now, start.at)}` +
    `<td class=n>${start?.coldStartMs === undefined ? "-" : coldStart(start.coldStartMs)}` +
    `<td class=n>${bytes(status.peakMemory ?? null)}` +
    `<td class=n>${ramTime(status.savedByteSeconds ?? 0)}` +
    `<td class=n>${status.activations}` +
    `<td class=err>${error}\n`
}

/** The smallest 1, 2 or 5 × 10^k at least `value` (at least 1): a chart's top. */
const niceCeil = (value: number): number => {
  if (!(value > 1)) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

/** A coordinate with one decimal, no trailing zero. */
const at1 = (value: number): string => String(Math.round(value * 10) / 10)

/** Chart geometry (SVG user units): the plot area right of the y labels and above the x labels. */
const chart = { width: 600, height: 140, left: 48, right: 8, top: 10, bottom: 22 }
const plotWidth = chart.width - chart.left - chart.right
const plotHeight = chart.height - chart.top - chart.bottom
const baseline = chart.top + plotHeight

/** A chart's frame: the axis lines, the top and zero labels, and the time labels under it. */
const frame = (snapshot: History.Snapshot, topLabel: string): string => {
  const hours = (snapshot.buckets.length * snapshot.bucketMs) / 3_600_000
  const x = (fraction: number) => at1(chart.left + plotWidth * fraction)
  return `<path class=axis d="M${chart.left} ${chart.top}H${chart.width - chart.right}M${chart.left} ${baseline}H${
    chart.width - chart.right
  }"/>` +
    `<text x=${chart.left - 4} y=${chart.top + 4} text-anchor=end>${topLabel}</text>` +
    `<text x=${chart.left - 4} y=${baseline} text-anchor=end>0</text>` +
    `<text x=${x(0)} y=${chart.height - 6}>${hours} h ago</text>` +
    `<text x=${x(0.5)} y=${chart.height - 6} text-anchor=middle>${hours / 2} h ago</text>` +
    `<text x=${x(1)} y=${chart.height - 6} text-anchor=end>now</text>`
}

/** An SVG chart with a title for screen readers and a tooltip. */
const svg = (id: string, title: string, body: string): string =>
  `<svg id=${id} viewBox="0 0 ${chart.width} ${chart.height}" role=img aria-labelledby=${id}-t>` +
  `<title id=${id}-t>${title}</title>${body}</svg>`

/** Starts per bucket, as bars. */
export const startsChart = (snapshot: History.Snapshot): string => {
  const { buckets } = snapshot
  const total = buckets.reduce((sum, bucket) => sum + bucket.starts, 0)
  const top = niceCeil(Math.max(0, ...buckets.map((bucket) => bucket.starts)))
  const step = plotWidth / buckets.length
  const bars: Array<string> = []
  buckets.forEach((bucket, i) => {
    if (bucket.starts === 0) return
    const h = (bucket.starts / top) * plotHeight
    bars.push(`M${at1(chart.left + i * step)} ${at1(baseline)}v${at1(-h)}h${at1(Math.max(1, step - 1))}v${at1(h)}z`)
  })
  const minutes = snapshot.bucketMs / 60_000
  return svg(
    "starts",
    `Apps started per ${minutes} minutes: ${total} in the last ${(buckets.length * snapshot.bucketMs) / 3_600_000} hours`,
    frame(snapshot, String(top)) + (bars.length === 0 ? "" : `<path class=bar d="${bars.join("")}"/>`)
  )
}

/** RAM saved per bucket (the average over the part soad saw), as a step area from where the history begins. */
export const savedChart = (snapshot: History.Snapshot): string => {
  const { buckets } = snapshot
  const topMb = niceCeil(Math.max(0, ...buckets.map((bucket) => bucket.savedBytes)) / 1e6)
  const step = plotWidth / buckets.length
  const y = (value: number) => at1(baseline - (value / 1e6 / topMb) * plotHeight)
  let d = ""
  let last = 0
  buckets.forEach((bucket, i) => {
    if (bucket.seenMs === 0) return
    if (d === "") d = `M${at1(chart.left + i * step)} ${at1(baseline)}`
    d += `V${y(bucket.savedBytes)}H${at1(chart.left + (i + 1) * step)}`
    last = i + 1
  })
  const area = d === "" || last === 0 ? "" : `<path class=area d="${d}V${at1(baseline)}z"/>`
  return svg(
    "saved",
    `RAM saved by stopped apps, average per ${snapshot.bucketMs / 60_000} minutes; now ${bytes(snapshot.savingNow)}`,
    frame(snapshot, bytes(topMb * 1e6)) + area
  )
}

const style = `:root{color-scheme:light dark;--bg:#fafafa;--fg:#1d1d1f;--dim:#6b6b70;--line:#d8d8dc;--card:#fff;` +
  `--accent:#2f6fdf;--ok:#1f8a3b;--warn:#b26b00;--bad:#c62828}` +
  `@media (prefers-color-scheme:dark){:root{--bg:#141416;--fg:#e8e8ea;--dim:#9a9aa2;--line:#34343a;--card:#1d1d20;` +
  `--accent:#6ea0ff;--ok:#5cc275;--warn:#e0a040;--bad:#ff6b6b}}` +
  `body{margin:0;padding:1rem 1.5rem;font:14px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}` +
  `h1{font-size:1.3rem;margin:0 0 .2rem}h2{font-size:1rem;margin:0 0 .4rem}.meta{color:var(--dim);margin:0 0 1rem}` +
  `a{color:var(--accent)}` +
  `.summary{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:1rem}` +
  `.tile{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.4rem .8rem;min-width:6.5rem}` +
  `.tile b{display:block;font-size:1.4rem;font-variant-numeric:tabular-nums}.tile span{color:var(--dim)}` +
  `.tile.failing b{color:var(--bad)}.tile.running b{color:var(--ok)}.tile.zero b{color:var(--dim)}` +
  `.charts{display:flex;flex-wrap:wrap;gap:1rem;margin-bottom:1rem}` +
  `figure{margin:0;flex:1 1 420px;max-width:620px;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.5rem}` +
  `svg{display:block;width:100%;height:auto}svg text{font-size:11px;fill:var(--dim)}` +
  `.axis{stroke:var(--line);fill:none}.bar{fill:var(--accent)}.area{fill:var(--ok);fill-opacity:.35;stroke:var(--ok)}` +
  `table{border-collapse:collapse;width:100%;background:var(--card)}` +
  `th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}` +
  `th{color:var(--dim);font-weight:600;white-space:nowrap;position:sticky;top:0;background:var(--card)}` +
  `td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}` +
  `td.err{color:var(--dim);overflow-wrap:anywhere}.app{color:var(--dim);overflow-wrap:anywhere}` +
  `.st{font-weight:600}.running .st{color:var(--ok)}.starting .st,.stopping .st{color:var(--warn)}` +
  `.failing .st,.failed .st{color:var(--bad)}.stopped .st{color:var(--dim)}tr.failing td.err,tr.failed td.err{color:var(--bad)}`

/** The page: summary, charts, table. Linear in the services. */
export const render = (input: Input): string => {
  const { history, now, statuses } = input
  const byState: Record<State, Array<Status>> = { failed: [], failing: [], starting: [], running: [], stopping: [], stopped: [] }
  let savedByteSeconds = 0
  let savingNow = 0
  for (const status of statuses) {
    byState[status.state].push(status)
    savedByteSeconds += status.savedByteSeconds ?? 0
    if (!isRunning(status)) savingNow += status.peakMemory ?? 0
  }
  const running = statuses.filter(isRunning).length
  const starts = history.buckets.reduce((sum, bucket) => sum + bucket.starts, 0)
  const hours = (history.buckets.length * history.bucketMs) / 3_600_000
  const tile = (value: string | number, label: string, kind = "") =>
    `<div class="tile ${kind}${value === 0 ? " zero" : ""}"><b>${value}</b><span>${label}</span></div>`
  const rows: Array<string> = []
  for (const state of order) for (const status of byState[state]) rows.push(row(status, now))
  const host = text(input.host)
  const failing = byState.failing.length + byState.failed.length
  return `<!doctype html>
<html lang=en>
<head>
<meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<meta http-equiv=refresh content=${refreshSeconds}>
<title>soad on ${host}: ${running} running${failing > 0 ? `, ${failing} failing` : ""}</title>
<style>${style}</style>
</head>
<body>
<h1>soad on ${host}</h1>
<p class=meta>${statuses.length} service${statuses.length === 1 ? "" : "s"} · reloads every ${refreshSeconds} s · ` +
    `<a href="/metrics">Prometheus metrics</a></p>
<section class=summary id=summary>
${tile(running, "running", "running")}${tile(byState.starting.length, "starting")}${tile(byState.stopping.length, "stopping")}` +
    `${tile(byState.stopped.length, "stopped")}${tile(failing, "failing", "failing")}` +
    `${tile(bytes(savingNow), "RAM saved now")}${tile(ramTime(savedByteSeconds), "RAM-time saved")}` +
    `${tile(starts, `starts in ${hours} h`)}
</section>
<section class=charts>
<figure><h2>Starts</h2>${startsChart(history)}</figure>
<figure><h2>RAM saved</h2>${savedChart(history)}</figure>
</section>
<table id=services>
<thead><tr><th>Service<th>State<th>Last start<th>Cold start<th>Peak RAM<th>RAM-time saved<th>Starts<th>Last error</thead>
<tbody>
${rows.join("")}</tbody>
</table>
</body>
</html>
`
}

/** The page now, from the Registry: every service's status, the history, the Clock's time and the host's name. */
export const page: Effect.Effect<string, never, Registry> = Effect.gen(function*() {
  const registry = yield* Registry
  const statuses = yield* statusesOf(yield* registry.services)
  return render({ statuses, history: yield* registry.history, now: yield* Monotonic.now, host: Os.hostname() })
})
