/**
 * The status page at `/` of `--metrics`, from a real soad: HTML with every service, the app's hostile STATUS= and a
 * hostile last error shown as text, the figures following a real start; `/metrics` still the Prometheus text.
 */
import * as Http from "node:http"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { freePort, get, sleep, soad, tempDirs } from "../harness.js"
import { hostileConfig, poke } from "../hostileApps.js"

const dir = tempDirs()

/** The answer to METHOD path on the metrics port. */
const request = (port: number, path: string, method = "GET"): Promise<{ status: number; headers: Http.IncomingHttpHeaders; body: string }> =>
  new Promise((resolve, reject) => {
    Http.request({ host: "127.0.0.1", port, path, method, agent: false }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
    }).on("error", reject).end()
  })

describe("the status page", () => {
  it("GET / is HTML with every service, hostile texts as text and the figures of a real start; /metrics stays Prometheus text", async () => {
    const d = dir()
    const [port, shopPort] = [await freePort(), await freePort()]
    const s = soad(["-c", hostileConfig(d, shopPort), "--metrics", `127.0.0.1:${port}`])
    await s.waitFor(/the status page on http:\/\/127\.0\.0\.1:\d+\//)

    const first = await request(port, "/")
    expect(first.status).toBe(200)
    expect(first.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(first.headers["content-security-policy"]).toMatch(/^default-src 'none'; style-src 'unsafe-inline'/)
    expect(first.headers["cache-control"]).toBe("no-store")
    expect(first.body).toMatch(/^<!doctype html>/)
    for (const name of ["blog", "shop", "broken"]) expect(first.body).toContain(`<td><bdi>${name}</bdi>`)
    expect(first.body).toContain("<svg id=starts")
    expect(first.body).toContain("<svg id=saved")

    // A start of blog, of shop (its STATUS=); broken is failed from the start (its error quotes the command).
    await get({ socketPath: Path.join(d, "blog.sock") })
    expect((await request(shopPort, "/")).body).toBe("hi\n")
    await poke(Path.join(d, "broken.sock"))
    await s.waitFor(/\[blog\] app exited/, 15_000)
    await s.waitFor(/\[broken\] services\.broken\.command: /, 15_000)
    let page = ""
    const end = Date.now() + 15_000
    while (!(page.includes("&lt;script&gt;") && page.includes("<tr class=failed><td><bdi>broken</bdi>"))) {
      if (Date.now() > end) throw new Error(`timed out waiting for the page to show shop's STATUS= and broken failed:\n${page}`)
      await sleep(100)
      page = (await request(port, "/")).body
    }
    const row = (name: string) => {
      const start = page.indexOf(`<td><bdi>${name}</bdi>`)
      return page.slice(page.lastIndexOf("<tr", start), page.indexOf("\n", start))
    }
    expect(row("shop")).toContain("<bdi class=app>&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=&quot;")
    expect(row("broken")).toContain("&lt;img src=x onerror=alert(1)&gt;")
    expect(page).not.toMatch(/<script|<img|\u001b/i)
    expect(row("blog")).toMatch(/^<tr class=stopped><td><bdi>blog<\/bdi><td><span class=st>stopped<\/span><td>\d+s ago<td class=n>[\d.]+ (ms|s)<td class=n>\d+M</)
    expect(page).toMatch(/<b>2<\/b><span>starts in 24 h<\/span>/) // blog and shop
    expect(page).toContain("<path class=bar ")

    const metrics = await request(port, "/metrics")
    expect(metrics.status).toBe(200)
    expect(metrics.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(metrics.body).toMatch(/^soad_activations_total\{service="blog"\} 1$/m)
    expect(metrics.body).not.toContain("<")

    const head = await request(port, "/", "HEAD")
    expect(head.status).toBe(200)
    expect(head.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(Number(head.headers["content-length"])).toBeGreaterThan(1000)
    expect(head.body).toBe("")
    expect((await request(port, "/nothing")).status).toBe(404)
    expect((await request(port, "/", "POST")).status).toBe(404)
  }, 60_000)
})
