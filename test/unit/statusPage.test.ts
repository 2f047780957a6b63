/**
 * The status page `--metrics` serves at `/`: a pure render of the statuses and the history. Hostile texts (an
 * app's STATUS=, a last error) come out as text, never markup, and without control characters; the page is linear
 * in the services; the charts draw what the history holds. Then the figures a run on the fake layers gives it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import fc from "fast-check"
import * as Activator from "../../src/Activator.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import * as History from "../../src/observe/history.js"
import * as StatusPage from "../../src/observe/statusPage.js"
import * as Registry from "../../src/Registry.js"
import { advance, captureEvents, settle, supervised, World } from "../../src/testing.js"
import { stoppedStatus } from "./statuses.js"

const now = 50 * 3_600_000

const status = stoppedStatus

const emptyHistory = History.make(now - 3_600_000).snapshot(now)

const render = (statuses: ReadonlyArray<Registry.Status>, history: History.Snapshot = emptyHistory) =>
  StatusPage.render({ statuses, history, now, host: "web1" })

/** The row of the service named `name` (rows start with `<tr class=STATE><td><bdi>NAME</bdi>`). */
const rowOf = (page: string, name: string): string => {
  const start = page.indexOf(`<td><bdi>${name}</bdi>`)
  expect(start, `a row for ${name}`).toBeGreaterThan(0)
  return page.slice(page.lastIndexOf("<tr", start), page.indexOf("\n", start))
}

/** C0 but LF, DEL and C1: none may reach the page. */
const controls = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/

/**
 * Any code point but a surrogate, as fast-check's `unit: "binary"` (the same index to code point, the same values
 * for the same seed): its own builds a map of all 1.1 million code points on first use (0.7-0.9 s).
 */
const gap = 0xe000 - 0xd800
const binary = fc.nat({ max: 0x10ffff - gap }).map(
  (index) => String.fromCodePoint(index < 0xd800 ? index : index + gap),
  (value) => {
    const code = typeof value === "string" ? value.codePointAt(0) : undefined
    if (code === undefined || String.fromCodePoint(code) !== value || (code >= 0xd800 && code < 0xe000)) {
      throw new Error("not one code point")
    }
    return code < 0xd800 ? code : code - gap
  }
)

/** The start tags in a piece of the page. */
const tags = (html: string) => [...html.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)/g)].map((match) => match[1]!.toLowerCase())

describe("the status page's hostile texts", () => {
  it("an app's STATUS= and a last error are shown as text: no tag, no attribute, no control character gets through", () => {
    const page = render([
      status("shop", {
        state: "running",
        pid: 4242,
        startedAt: now - 60_000,
        appStatus: "<script>alert(1)</script>",
        lastError: { message: `"><img src=x onerror=alert(1)> \u001b]52;c;cm0gLXJmIH4=\u0007\r\u009b31m`, at: now - 5000 }
      })
    ])
    const row = rowOf(page, "shop")
    expect(row).toContain("&lt;script&gt;alert(1)&lt;/script&gt;")
    expect(row).toContain("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;")
    expect(tags(row)).toEqual(["tr", "td", "bdi", "td", "span", "bdi", "td", "td", "td", "td", "td", "td", "bdi"])
    expect(page).not.toMatch(controls)
    expect(row).toContain("\ufffd]52;c;") // the escape sequence is visible, inert
    expect(page).not.toMatch(/<script|<img/i)
  })

  it("a service's name and the host's name are escaped too", () => {
    const page = StatusPage.render({ statuses: [status("a<b>&c")], history: emptyHistory, now, host: "h<1>\u001b" })
    expect(page).toContain("<bdi>a&lt;b&gt;&amp;c</bdi>")
    expect(page).toContain("<title>soad on h&lt;1&gt;\ufffd:")
    expect(page).not.toMatch(controls)
  })

  it("whatever the texts, each row has the same tags, and its texts hold no <, >, quote or control character (property)", () => {
    const plain = tags(rowOf(render([status("svc", { appStatus: "x", lastError: { message: "y", at: now } })]), "svc"))
    const hostile = fc.oneof(
      fc.string({ unit: binary, maxLength: 300 }),
      fc.array(fc.constantFrom("<", ">", "\"", "'", "&", "<script>", "</td>", "\u001b[2J", "\r", "\u0085", "\ud800", "\u202e", "a"))
        .map((parts) => parts.join(""))
    )
    fc.assert(fc.property(hostile, hostile, (appStatus, message) => {
      const page = render([status("svc", { appStatus, lastError: { message, at: now - 1000 } })])
      const row = rowOf(page, "svc")
      expect(tags(row)).toEqual(plain)
      expect(page).not.toMatch(controls)
      for (const [, inner] of row.matchAll(/<bdi[^>]*>([^]*?)<\/bdi>/g)) expect(inner).not.toMatch(/[<>"']/)
    }), { numRuns: 300 })
  })

  it("a long error or STATUS= is cut: the row stays short", () => {
    const row = rowOf(render([status("svc", { appStatus: "s".repeat(10_000), lastError: { message: "e".repeat(100_000), at: now } })]), "svc")
    expect(row.length).toBeLessThan(600)
    expect(row).toContain("…")
  })
})

describe("the status page's content", () => {
  it("a summary by state, the RAM saved now and in all, starts in 24 h; failing services first in the table", () => {
    const history = History.make(now - 3_600_000)
    history.record(now - 1_800_000, { starts: 3 })
    const page = render([
      status("blog", { activations: 2, peakMemory: 80e6, savedByteSeconds: 80e6 * 3600 * 30 }),
      status("api", { state: "failing", failedStarts: 1, lastError: { message: "cannot start the app: spawn app ENOENT", at: now - 90_000 } }),
      status("shop", { state: "running", pid: 7, startedAt: now - 250_000, activations: 1, lastStart: { at: now - 250_000, coldStartMs: 231.4 } }),
      status("echo", { state: "running", instances: 3, activations: 212, lastStart: { at: now - 2000, coldStartMs: undefined } })
    ], history.snapshot(now))
    const summary = page.slice(page.indexOf("<section class=summary"), page.indexOf("</section>"))
    const tile = (label: string) => new RegExp(`<b>([^<]*)</b><span>${label}</span>`).exec(summary)?.[1]
    expect(tile("running")).toBe("2")
    expect(tile("stopped")).toBe("1")
    expect(tile("failing")).toBe("1")
    expect(tile("RAM saved now")).toBe("80M")
    expect(tile("RAM-time saved")).toBe("2.4 GB·h")
    expect(tile("starts in 24 h")).toBe("3")
    expect(page).toContain("<title>soad on web1: 2 running, 1 failing</title>")
    const order = ["api", "shop", "echo", "blog"].map((name) => page.indexOf(`<td><bdi>${name}</bdi>`))
    expect(order).toEqual([...order].sort((a, b) => a - b))
    expect(rowOf(page, "shop")).toContain("<td>4m10s ago<td class=n>231 ms<td class=n>-")
    expect(rowOf(page, "echo")).toContain("running</span> (3 instances)")
    expect(rowOf(page, "api")).toContain("<td class=err>1m30s ago: <bdi>cannot start the app: spawn app ENOENT</bdi>")
    expect(rowOf(page, "blog")).toContain("<td class=n>80M<td class=n>2.4 GB·h<td class=n>2")
    expect(page).toMatch(/<meta http-equiv=refresh content=\d+>/)
    expect(page).not.toMatch(/<script|<link|src=|url\(/) // nothing to load, nothing to run
  })

  it("1,000 services: every row is there, and the page grows linearly (about 200 bytes a service)", () => {
    const many = (n: number) =>
      Array.from({ length: n }, (_, i) =>
        status(`service-${i}`, {
          state: i % 10 === 0 ? "running" : i % 97 === 0 ? "failing" : "stopped",
          activations: i,
          peakMemory: 40e6 + i,
          savedByteSeconds: i * 1e9,
          lastStart: { at: now - i * 1000, coldStartMs: 100 + i },
          ...(i % 97 === 0 ? { lastError: { message: "the app exited by itself after 0.2 s (code 1)", at: now - 5000 } } : {})
        }))
    const [small, large] = [many(100), many(1000)].map((statuses) => render(statuses))
    for (let i = 0; i < 1000; i++) expect(large).toContain(`<td><bdi>service-${i}</bdi>`)
    expect((large.match(/<tr class=/g) ?? []).length).toBe(1000)
    const perService = (large.length - small.length) / 900
    expect(perService).toBeLessThan(260)
    expect(large.length).toBeLessThan(small.length + 900 * perService + 1000) // no term that grows faster
  })

  it("the starts chart has a bar for each bucket with starts, its top a round figure above the most; none without", () => {
    const history = History.make(0)
    history.record(5 * 60_000, { starts: 4 })
    history.record(25 * 60_000, { starts: 1 })
    const chart = StatusPage.startsChart(history.snapshot(30 * 60_000))
    const bars = /<path class=bar d="([^"]*)"/.exec(chart)![1]!.match(/M/g)
    expect(bars).toHaveLength(2)
    expect(chart).toContain(">5</text>") // the top of the axis: 1, 2 or 5 × 10^k, at least the most starts in a bucket
    expect(chart).toContain("v-86.4h") // 4 of 5: 0.8 of the plot's 108 units
    expect(chart).toContain("<title id=starts-t>Apps started per 10 minutes: 5 in the last 24 hours</title>")
    expect(StatusPage.startsChart(History.make(0).snapshot(60_000))).not.toContain("class=bar")
  })

  it("the RAM saved chart is an area from where the history begins, its top a round figure above the most saved", () => {
    const history = History.make(23 * 3_600_000)
    history.record(23 * 3_600_000, { saving: 130e6 })
    const chart = StatusPage.savedChart(history.snapshot(24 * 3_600_000))
    expect(chart).toMatch(/<path class=area d="M[\d.]+ [\d.]+(V[\d.]+H[\d.]+)+V[\d.]+z"\/>/)
    expect(chart).toContain(">200M</text>")
    expect(chart).toContain("now 130M")
    expect(StatusPage.savedChart(History.make(0).snapshot(0))).not.toContain("class=area")
  })
})

describe("the page's figures from a run on the fake layers", () => {
  it.scoped("a start shows as the last start with its cold start, and in the history's starts", () =>
    Effect.gen(function*() {
      const world = new World()
      const { layer } = captureEvents()
      const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
      const config = ServiceConfig.make({
        listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
        command: ["app"],
        idleTimeout: Duration.seconds(10)
      })
      const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
      yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
      yield* settle
      const registry = yield* Effect.provide(Registry.Registry, context)
      const before = yield* (yield* registry.services)[0]!.status
      expect(before.lastStart).toBeUndefined()
      yield* advance("1 second")
      world.accepting = false
      yield* world.connect(listeners[0]!.fd)
      yield* settle
      const starting = yield* (yield* registry.services)[0]!.status
      expect(starting.lastStart).toEqual({ at: 1000, coldStartMs: undefined })
      yield* advance("20 millis")
      world.acceptAll()
      yield* advance("20 millis")
      const running = yield* (yield* registry.services)[0]!.status
      expect(running.lastStart?.at).toBe(1000)
      expect(running.lastStart?.coldStartMs).toBeGreaterThan(0)
      const history = yield* registry.history
      expect(history.buckets.at(-1)!.starts).toBe(1)
      const page = yield* StatusPage.page.pipe(Effect.provideService(Registry.Registry, registry))
      expect(rowOf(page, "app")).toMatch(/^<tr class=running>.*<td>0s ago<td class=n>[\d.]+ ms/)
    }))
})

describe("the page's figures from accept mode on the fake layers", () => {
  it.scoped("each instance started is a start in the history and the latest is the service's last start", () =>
    Effect.gen(function*() {
      const world = new World()
      const { layer } = captureEvents()
      const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
      const config = ServiceConfig.make({
        listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
        command: ["echo-server"],
        accept: true
      })
      const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
      yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
      yield* settle
      const registry = yield* Effect.provide(Registry.Registry, context)
      yield* advance("2 seconds")
      for (let i = 0; i < 3; i++) yield* world.connect(listeners[0]!.fd)
      yield* settle
      const status = yield* (yield* registry.services)[0]!.status
      expect(status.lastStart).toEqual({ at: 2000, coldStartMs: undefined })
      expect((yield* registry.history).buckets.at(-1)!.starts).toBe(3)
    }))
})
