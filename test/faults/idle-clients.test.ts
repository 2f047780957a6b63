/**
 * Faults: clients that connect to soad's own servers (the control socket, the metrics endpoint) and then say
 * nothing. None of them may hold up shutdown: SIGTERM ends soad, and its apps, within the apps' stop timeouts.
 */
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { alive, appFixture, eventually, freePort, get, soad, type Soad, tempDirs } from "../harness.js"

const dir = tempDirs()
const clients: Array<{ destroy: () => void }> = []
afterEach(() => {
  for (const client of clients.splice(0)) client.destroy()
})

/** The stop timeout the tests give the app: soad must be gone within it plus a second's margin. */
const stopTimeoutS = 1
const boundMs = stopTimeoutS * 1000 + 1000

/** Opens a connection that never sends anything; resolves once it is connected. */
const silent = (options: Net.NetConnectOpts): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect(options)
    socket.on("error", () => {})
    clients.push(socket)
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

/** SIGTERM to soad: how it exited, or "still running" if it had not within `boundMs`. */
const terminate = async (s: Soad): Promise<number | string> => {
  s.process.kill("SIGTERM")
  return Promise.race([s.exited, new Promise<string>((resolve) => setTimeout(() => resolve("still running"), boundMs))])
}

/** Starts soad with an app running (activated by a real request); the app's pid. */
const withRunningApp = async (extra: ReadonlyArray<string>) => {
  const d = dir()
  const socketPath = Path.join(d, "app.sock")
  const control = Path.join(d, "control.sock")
  const s = soad([
    "-s", socketPath, "-t", "60", "--stop-timeout", String(stopTimeoutS), "--control", control, ...extra,
    "--", process.execPath, appFixture
  ])
  await s.waitFor(/listening/)
  await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
  const reply = await get({ socketPath })
  const pid = reply.pid as number
  expect(alive(pid)).toBe(true)
  return { s, control, pid, socketPath }
}

describe("idle clients on soad's own servers", () => {
  it("fault: an idle client on the control socket; promise: SIGTERM ends soad and its apps within their stop timeouts", async () => {
    const { control, pid, s } = await withRunningApp([])
    await silent({ path: control })
    expect(await terminate(s)).toBe(0)
    expect(alive(pid)).toBe(false)
    expect(Fs.existsSync(control)).toBe(false)
  })

  it("fault: a keep-alive HTTP client on --metrics HOST:PORT; promise: SIGTERM ends soad and its apps within their stop timeouts", async () => {
    const port = await freePort()
    const { pid, s } = await withRunningApp(["--metrics", `127.0.0.1:${port}`])
    await s.waitFor(/metrics on http/)
    const agent = new Http.Agent({ keepAlive: true, keepAliveMsecs: 60_000 })
    clients.push(agent)
    const status = await new Promise<number>((resolve, reject) => {
      Http.get({ host: "127.0.0.1", port, path: "/metrics", agent }, (response) => {
        response.resume()
        response.on("end", () => resolve(response.statusCode ?? 0))
      }).on("error", reject)
    })
    expect(status).toBe(200)
    expect(Object.keys(agent.freeSockets).length).toBe(1) // the connection stays open, idle
    expect(await terminate(s)).toBe(0)
    expect(alive(pid)).toBe(false)
  })

  it("fault: a client connects to --metrics and sends nothing; promise: SIGTERM ends soad and its apps within their stop timeouts", async () => {
    const port = await freePort()
    const { pid, s } = await withRunningApp(["--metrics", `127.0.0.1:${port}`])
    await s.waitFor(/metrics on http/)
    await silent({ host: "127.0.0.1", port })
    expect(await terminate(s)).toBe(0)
    expect(alive(pid)).toBe(false)
  })

  it("fault: a client sends half an HTTP request to --metrics; promise: SIGTERM ends soad and its apps within their stop timeouts", async () => {
    const port = await freePort()
    const { pid, s } = await withRunningApp(["--metrics", `127.0.0.1:${port}`])
    await s.waitFor(/metrics on http/)
    const socket = await silent({ host: "127.0.0.1", port })
    socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n") // the headers never end: a request in progress, not idle
    expect(await terminate(s)).toBe(0)
    expect(alive(pid)).toBe(false)
  })

  it("fault: a client connects to --metrics PATH and sends nothing; promise: SIGTERM ends soad and its apps, and removes the socket", async () => {
    const metrics = Path.join(dir(), "metrics.sock")
    const { pid, s } = await withRunningApp(["--metrics", metrics])
    await s.waitFor(/metrics on http/)
    await silent({ path: metrics })
    expect(await terminate(s)).toBe(0)
    expect(alive(pid)).toBe(false)
    expect(Fs.existsSync(metrics)).toBe(false)
  })
})

describe("fault: a control client that sends bytes without ever ending its request", () => {
  it("promise: soad cuts it off after 64 KiB instead of buffering without bound, and keeps answering others", async () => {
    const d = dir()
    const control = Path.join(d, "control.sock")
    const s = soad(["-s", Path.join(d, "app.sock"), "--control", control, "--", process.execPath, appFixture])
    await s.waitFor(/listening on/)
    await eventually(() => Fs.existsSync(control), 15_000, "the control socket") // it opens just after the listeners
    const answer = await new Promise<string>((resolve) => {
      const socket = Net.connect(control)
      clients.push(socket)
      let text = ""
      socket.on("data", (chunk) => (text += chunk))
      socket.on("end", () => resolve(text))
      socket.on("error", () => {}) // soad may close while the rest is still on its way
      socket.write("x".repeat(80 * 1024)) // over the limit, and no newline, ever
    })
    expect(answer).toContain("request too long")
    const status = await new Promise<string>((resolve) => {
      const socket = Net.connect(control, () => socket.write(JSON.stringify({ command: "status" }) + "\n"))
      clients.push(socket)
      let text = ""
      socket.on("data", (chunk) => (text += chunk))
      socket.on("end", () => resolve(text))
    })
    expect(JSON.parse(status)).toMatchObject({ ok: true })
    expect(alive(s.pid)).toBe(true)
  })
})
