/**
 * --waiting-page (proxy mode): a real app that takes 3 s to bind its port; requests over real sockets. The
 * promise: a browser navigation that has waited SECONDS gets soad's 503 page (and its connection closed); a
 * fetch, a POST and everything else keep waiting and get the app's own answer; --waiting-page-file is served;
 * bad values are refused in one line.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { freePort, root, soad, soadRun, tempDirs, writeConfig } from "../harness.js"

const plainApp = Path.join(root, "test", "fixtures", "plain-app.mjs")
const dir = tempDirs()

/** Sends `request` and resolves with everything received until the other side closes (never half-closes). */
const ask = (socketPath: string, request: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = Net.connect(socketPath)
    let answer = ""
    socket.on("connect", () => socket.write(request))
    socket.on("data", (chunk) => (answer += chunk))
    socket.on("end", () => {
      socket.destroy()
      resolve(answer)
    })
    socket.on("error", reject)
  })

const navigation = (method = "GET") =>
  `${method} /page HTTP/1.1\r\nHost: x\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\nConnection: close\r\n\r\n`

/** soad in proxy mode before an app that binds its port 3 s after it starts. */
const slowApp = (extra: ReadonlyArray<string>) => {
  const socketPath = Path.join(dir(), "app.sock")
  const s = soad([
    "-s", socketPath, "--upstream", "auto", "--log-level", "debug", ...extra,
    "--", "node", plainApp, "--delay", "3000"
  ])
  return { socketPath, s }
}

describe("--waiting-page", () => {
  it("a navigation gets the 503 page after SECONDS; a fetch and a POST with Accept: text/html wait for the app", async () => {
    const metricsPort = await freePort()
    const { s, socketPath } = slowApp(["--waiting-page", "1", "--metrics", `127.0.0.1:${metricsPort}`])
    await s.waitFor(/listening on/)
    const page = ask(socketPath, navigation())
    const api = ask(socketPath, "GET /api HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
    const post = ask(
      socketPath,
      "POST /form HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=1"
    )
    const answered = await page
    expect(s.output()).not.toMatch(/the app accepts/) // the page came while the app was still starting
    expect(answered).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/)
    expect(answered).toMatch(/\r\nRetry-After: 1\r\n/)
    expect(answered).toMatch(/\r\nContent-Type: text\/html; charset=utf-8\r\n/)
    expect(answered).toContain("node is starting") // the service's name: the command's
    expect(answered).toContain("location.reload()")
    const [apiAnswer, postAnswer] = await Promise.all([api, post])
    expect(apiAnswer).toMatch(/^HTTP\/1\.1 200 /)
    expect(apiAnswer).toContain(`"url":"/api"`)
    expect(postAnswer).toMatch(/^HTTP\/1\.1 200 /)
    expect(postAnswer).toContain(`"url":"/form","body":3`)
    expect(s.count(/answered a GET navigation with the waiting page/)).toBe(1)
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    expect(metrics).toMatch(/^soad_waiting_pages_total\{service="node"\} 1$/m)
    // Once the app is up, a navigation goes to it.
    expect(await ask(socketPath, navigation())).toMatch(/^HTTP\/1\.1 200 /)
  })

  it("HEAD gets the head alone; --waiting-page-file is served with the service's name", async () => {
    const file = Path.join(dir(), "wait.html")
    Fs.writeFileSync(file, "<!doctype html><title>soon</title><p id=mine>{{service}} warms up</p>\n")
    const { s, socketPath } = slowApp(["--waiting-page", "0.5", "--waiting-page-file", file])
    await s.waitFor(/listening on/)
    const [head, get] = await Promise.all([ask(socketPath, navigation("HEAD")), ask(socketPath, navigation())])
    expect(head).toMatch(/^HTTP\/1\.1 503 /)
    expect(head.endsWith("\r\n\r\n")).toBe(true)
    expect(get).toMatch(/^HTTP\/1\.1 503 /)
    expect(get.endsWith("\r\n\r\n<!doctype html><title>soon</title><p id=mine>node warms up</p>\n")).toBe(true)
  })

  it("refuses bad values in one line: on the command line and in soad check", () => {
    const d = dir()
    const notProxy = soadRun(["-s", Path.join(d, "a.sock"), "--waiting-page", "2", "--", "true"])
    expect(notProxy.code).toBe(2)
    expect(notProxy.stderr).toMatch(/--waiting-page works in proxy mode only: add --upstream/)
    const badSeconds = soadRun(["-s", Path.join(d, "a.sock"), "--upstream", "auto", "--waiting-page", "soon", "--", "true"])
    expect(badSeconds.code).toBe(2)
    expect(badSeconds.stderr).toMatch(/--waiting-page: 'soon' is not a positive number of seconds/)
    const missing = soadRun(["-s", Path.join(d, "a.sock"), "--upstream", "auto", "--waiting-page", "2", "--waiting-page-file", Path.join(d, "none.html"), "--", "true"])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/--waiting-page-file: cannot read .*none\.html \(ENOENT\)/)

    const big = Path.join(d, "big.html")
    Fs.writeFileSync(big, "x".repeat(64 * 1024 + 1))
    const config = writeConfig(d, `
[services.a]
listen = ["${Path.join(d, "a.sock")}"]
command = ["/bin/true"]
waiting-page = 2
[services.b]
listen = ["${Path.join(d, "b.sock")}"]
command = ["/bin/true"]
upstream = "auto"
waiting-page = "soon"
[services.c]
listen = ["${Path.join(d, "c.sock")}"]
command = ["/bin/true"]
upstream = "auto"
waiting-page = 2
waiting-page-file = "big.html"
[services.d]
listen = ["${Path.join(d, "d.sock")}"]
command = ["/bin/true"]
upstream = "auto"
waiting-page = 2
waiting-page-file = "missing.html"
`)
    const checked = soadRun(["check", config])
    expect(checked.code).toBe(1)
    const lines = checked.stderr.trim().split("\n")
    expect(lines).toContainEqual(expect.stringMatching(/services\.a: waiting-page works in proxy mode only: add upstream$/))
    expect(lines).toContainEqual(expect.stringMatching(/services\.b\.waiting-page: expected a positive number of seconds .*found "soon"$/))
    expect(lines).toContainEqual(expect.stringMatching(/services\.c\.waiting-page-file: .*big\.html is 65537 bytes, more than the 65536/))
    expect(lines).toContainEqual(expect.stringMatching(/services\.d\.waiting-page-file: cannot read .*missing\.html \(ENOENT\)/))

    Fs.writeFileSync(Path.join(d, "ok.html"), "<p>wait</p>")
    const good = writeConfig(d, `
[defaults]
waiting-page = 2
[services.plain]
listen = ["${Path.join(d, "a.sock")}"]
command = ["/bin/true"]
[services.proxied]
listen = ["${Path.join(d, "b.sock")}"]
command = ["/bin/true"]
upstream = "auto"
waiting-page-file = "ok.html"
`)
    const ok = soadRun(["check", good])
    expect(ok.stderr).toBe("")
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/waiting\s+a page after 2s \(.*ok\.html\)/)
  })
})
