/**
 * The status page of `--metrics` in a real browser (headless Chromium, test/chromium.ts): the summary, the rows and
 * the SVG charts are drawn; an app's hostile STATUS= and a hostile last error show as text, and nothing in them
 * becomes an element or runs; the page reloads by itself and then shows the new figures; dark mode has its own
 * colors. Skipped with a message when chromium is not installed, except under CI=true, where that is a failure.
 */
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { available, open } from "../chromium.js"
import { freePort, sleep, soad, tempDirs } from "../harness.js"
import { hostileConfig, poke } from "../hostileApps.js"

const dir = tempDirs()

/** What the page shows, read in the browser. */
interface Seen {
  readonly title: string
  readonly summary: { readonly height: number; readonly text: string }
  readonly rows: Record<string, { readonly height: number; readonly cells: ReadonlyArray<string> }>
  readonly elements: { readonly scripts: number; readonly images: number; readonly iframes: number }
  readonly charts: Record<string, { readonly width: number; readonly height: number; readonly marks: number }>
  readonly background: string
  readonly marker: boolean
}

const look = `(() => {
  const box = (element) => element === null ? { width: 0, height: 0 } : element.getBoundingClientRect()
  const rows = {}
  for (const row of document.querySelectorAll("#services tbody tr")) {
    const cells = [...row.cells].map((cell) => cell.textContent)
    rows[cells[0]] = { height: box(row).height, cells }
  }
  const chart = (id) => {
    const svg = document.getElementById(id)
    const marks = svg === null ? 0 : [...svg.querySelectorAll("path.bar, path.area")].filter((p) => box(p).height > 0).length
    return { width: box(svg).width, height: box(svg).height, marks }
  }
  const summary = document.getElementById("summary")
  return {
    title: document.title,
    summary: { height: box(summary).height, text: summary === null ? "" : summary.textContent },
    rows,
    elements: { scripts: document.scripts.length, images: document.images.length, iframes: document.querySelectorAll("iframe").length },
    charts: { starts: chart("starts"), saved: chart("saved") },
    background: getComputedStyle(document.body).backgroundColor,
    marker: window.soadTestMarker === 1
  }
})()`

describe("the status page in a browser", () => {
  const test = available ? it : it.skip
  if (!available) it.skip("[skipped: needs chromium and python3 (apt-get install -y chromium); CI installs them]", () => {})

  test("headless Chromium shows the summary, the rows and the charts, hostile texts as text, and reloads by itself", async () => {
    const d = dir()
    const [port, shopPort] = [await freePort(), await freePort()]
    const s = soad(["-c", hostileConfig(d, shopPort), "--metrics", `127.0.0.1:${port}`])
    await s.waitFor(/the status page on http/)
    await poke(Path.join(d, "broken.sock"))
    const shop = Net.connect(shopPort, "127.0.0.1").on("error", () => {})
    await s.waitFor(/\[shop\] the app accepts/, 15_000)
    shop.destroy()
    await s.waitFor(/\[broken\] services\.broken\.command: /, 15_000)

    const { evaluate, send, sessionId } = await open(`http://127.0.0.1:${port}/`)
    const seen = async (): Promise<Seen | undefined> => evaluate<Seen>(look) // undefined between two documents
    let page: Seen | undefined
    const until = async (what: string, ok: (page: Seen) => boolean, timeoutMs: number) => {
      const end = Date.now() + timeoutMs
      for (;;) {
        page = await seen()
        if (page !== undefined && ok(page)) return page
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; seen: ${JSON.stringify(page)}`)
        await sleep(100)
      }
    }
    const first = await until("the page", (p) => p.rows.shop !== undefined && p.rows.shop.cells[1]!.includes("<script>"), 20_000)
    expect(first.title).toMatch(/^soad on .+: 1 running, 1 failing$/)
    expect(first.summary.height).toBeGreaterThan(0)
    expect(first.summary.text).toMatch(/1running/)
    expect(first.summary.text).toMatch(/1failing/)
    // shop's STATUS= as its own words, visible; broken's error quoting its command.
    expect(first.rows.shop!.height).toBeGreaterThan(0)
    expect(first.rows.shop!.cells[1]).toContain(`running <script>document.title='pwned'</script>"><img src=x onerror="`)
    expect(first.rows.broken!.cells[0]).toBe("broken")
    expect(first.rows.broken!.cells[1]).toBe("failed")
    expect(first.rows.broken!.cells[7]).toMatch(/ago: command: .*"><img src=x onerror=alert\(1\)>/)
    // Nothing of theirs became an element, so nothing ran or loaded.
    expect(first.elements).toEqual({ scripts: 0, images: 0, iframes: 0 })
    expect(first.title).not.toContain("pwned")
    // The charts are drawn, with a bar for shop's start.
    for (const id of ["starts", "saved"]) {
      expect(first.charts[id]!.width, id).toBeGreaterThan(100)
      expect(first.charts[id]!.height, id).toBeGreaterThan(20)
    }
    expect(first.charts.starts!.marks).toBe(1)
    expect(first.rows.blog!.cells[6]).toBe("0") // blog has not started

    // The page reloads by itself (a marker set in this document is gone) and shows blog's start.
    await evaluate("window.soadTestMarker = 1")
    await poke(Path.join(d, "blog.sock"))
    await s.waitFor(/\[blog\] app started/, 15_000)
    const reloaded = await until("a reload showing blog's start", (p) => !p.marker && p.rows.blog?.cells[6] === "1", 30_000)
    expect(reloaded.summary.text).toMatch(/2starts in 24 h/)

    // Dark mode has its own colors.
    await send("Emulation.setEmulatedMedia", { features: [{ name: "prefers-color-scheme", value: "light" }] }, sessionId)
    const light = (await until("the light page", () => true, 5000)).background
    await send("Emulation.setEmulatedMedia", { features: [{ name: "prefers-color-scheme", value: "dark" }] }, sessionId)
    const dark = (await until("the dark page", () => true, 5000)).background
    expect(light).toBe("rgb(250, 250, 250)")
    expect(dark).toBe("rgb(20, 20, 22)")
  }, 90_000)
})
