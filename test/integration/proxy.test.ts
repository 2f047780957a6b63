/**
 * Proxy mode (--upstream): apps that bind their own port, activated through soad's relay.
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, eventually, freePort, get, root, sleep, soad, tempDirs } from "../harness.js"

const plainApp = Path.join(root, "test", "fixtures", "plain-app.mjs")
const dir = tempDirs()

/** Connects, sends `data`, half-closes, and resolves with everything received until the other side closes. */
const exchange = (target: { readonly path: string } | { readonly port: number; readonly host: string }, data: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = Net.connect({ ...target, allowHalfOpen: true })
    let answer = ""
    socket.on("connect", () => socket.end(data))
    socket.on("data", (chunk) => (answer += chunk))
    socket.on("end", () => resolve(answer))
    socket.on("error", reject)
  })

describe("--upstream", () => {
  it("activates an app that binds its own port, relays, stops it when idle and brings it back", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const upstreamPort = await freePort()
    const s = soad(["-s", socketPath, "--upstream", `127.0.0.1:${upstreamPort}`, "-t", "0.5", "--", "node", plainApp, "--port", String(upstreamPort)])
    await s.waitFor(/listening on/)
    const first = await get({ socketPath })
    expect(first).toMatchObject({ port: upstreamPort, url: "/" })
    const again = await get({ socketPath }, "/second")
    expect(again.pid).toBe(first.pid)
    await s.waitFor(/stopping the app \(pid \d+, idle for/, 15_000)
    await s.waitFor(/app exited \(code 0/, 15_000)
    await eventually(() => !alive(first.pid as number), 15_000, "the app to stop")
    const third = await get({ socketPath })
    expect(third.pid).not.toBe(first.pid)
  })

  it("auto: soad picks a free loopback port and gives it to the app as PORT", async () => {
    const port = await freePort()
    const s = soad(["-l", `127.0.0.1:${port}`, "--upstream", "auto", "--", "node", plainApp])
    await s.waitFor(/listening on/)
    const reply = await get({ host: "127.0.0.1", port })
    expect(reply.port).not.toBe(port)
    expect(reply.port).toBeGreaterThan(0)
    expect(s.output()).toMatch(new RegExp(`upstream 127\\.0\\.0\\.1:${reply.port}\\)`))
  })

  it("holds every connection that arrives during a slow start and relays them in arrival order", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const order = Path.join(d, "order")
    const s = soad(["-s", socketPath, "--upstream", "auto", "--", "node", plainApp, "--delay", "1000", "--order-file", order])
    await s.waitFor(/listening on/)
    // Connect one after the other (each connected before the next), then all send at once.
    const sockets: Array<Net.Socket> = []
    for (let i = 0; i < 12; i++) {
      sockets.push(await new Promise<Net.Socket>((resolve) => {
        const socket = Net.connect(socketPath, () => resolve(socket))
      }))
    }
    const answers = await Promise.all(sockets.map((socket, i) =>
      new Promise<string>((resolve, reject) => {
        let answer = ""
        socket.on("data", (chunk) => (answer += chunk))
        socket.on("end", () => resolve(answer))
        socket.on("error", reject)
        socket.write(`GET /${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      })
    ))
    expect(answers.every((answer) => answer.startsWith("HTTP/1.1 200"))).toBe(true)
    expect(Fs.readFileSync(order, "utf8").trim().split("\n")).toEqual(sockets.map((_, i) => `/${i}`))
  })

  it("half-close: a client that shuts down writing still gets its answer", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "--", "node", plainApp])
    await s.waitFor(/listening on/)
    const payload = "RAW " + "x".repeat(100_000)
    expect(await exchange({ path: socketPath }, payload)).toBe(`got ${payload.length} bytes`)
  })

  it("backpressure: a slow reader does not make soad buffer the app's output", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "--", "node", plainApp])
    await s.waitFor(/listening on/)
    await get({ socketPath }) // the app runs
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(Fs.readFileSync(`/proc/${s.pid}/status`, "utf8"))![1]) * 1024
    const before = rss()
    let received = 0
    const request = Http.get({ socketPath, path: "/big?mb=256" })
    const response = await new Promise<Http.IncomingMessage>((resolve) => request.on("response", resolve))
    response.pause() // the reader stalls while the app has 256 MiB to send
    await sleep(1500)
    const during = rss()
    expect(during - before).toBeLessThan(32 * 1024 * 1024)
    await new Promise<void>((resolve) => {
      response.on("data", (chunk: Buffer) => (received += chunk.length))
      response.on("end", resolve)
      response.resume()
    })
    expect(received).toBe(256 * 1024 * 1024)
  })

  it("a WebSocket echo keeps working across messages, through the upgrade", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "-t", "30", "--", "node", plainApp])
    await s.waitFor(/listening on/)
    const socket = Net.connect(socketPath)
    let buffer = Buffer.alloc(0)
    const waiting: Array<(data: Buffer) => void> = []
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk])
      waiting.shift()?.(buffer)
    })
    const next = () => new Promise<Buffer>((resolve) => (buffer.length > 0 ? resolve(buffer) : waiting.push(resolve)))
    socket.write(
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${Crypto.randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`
    )
    await next()
    expect(buffer.toString()).toMatch(/^HTTP\/1\.1 101 Switching Protocols/)
    buffer = Buffer.alloc(0)
    const frame = (text: string) => {
      const payload = Buffer.from(text)
      const mask = Crypto.randomBytes(4)
      const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))
      return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked])
    }
    for (const message of ["hello", "across", "messages"]) {
      socket.write(frame(message))
      const reply = await next()
      expect(reply.subarray(2).toString()).toBe(message)
      buffer = Buffer.alloc(0)
      await sleep(200)
    }
    socket.destroy()
  })

  it("an error on one side ends the other: the app killed mid-stream closes the client's connection", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "-t", "60", "--", "node", plainApp])
    await s.waitFor(/listening on/)
    const pid = (await get({ socketPath })).pid as number
    const client = Net.connect(socketPath)
    client.on("error", () => {})
    const closed = new Promise<void>((resolve) => client.on("close", () => resolve()))
    client.write(`GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Crypto.randomBytes(16).toString("base64")}\r\n\r\n`)
    await new Promise((resolve) => client.once("data", resolve)) // 101: a long-lived connection through soad
    process.kill(pid, "SIGKILL")
    await closed
    expect(client.destroyed).toBe(true)
  })

  it("an open connection that sends nothing for -t does not keep the app; it is closed after the app stops", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "-t", "0.5", "--", "node", plainApp])
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath })
    const quiet = Net.connect(socketPath)
    const closed = new Promise<void>((resolve) => quiet.on("close", () => resolve()))
    quiet.on("error", () => {})
    await s.waitFor(/stopping the app \(pid \d+, idle for/, 15_000)
    await closed
    await eventually(() => !alive(reply.pid as number), 15_000, "the app to stop")
  })

  it("an app that fails to bind: soad closes the held clients and backs off", async () => {
    const socketPath = Path.join(dir(), "app.sock")
    const s = soad(["-s", socketPath, "--upstream", "auto", "--", "node", plainApp, "--fail-bind"])
    await s.waitFor(/listening on/)
    const results = await Promise.allSettled([get({ socketPath }), get({ socketPath }), get({ socketPath })])
    expect(results.every((result) => result.status === "rejected")).toBe(true)
    await s.waitFor(/app exited by itself \(code 1/)
    await s.waitFor(/closed \d+ waiting connections?: the app exited before it came up/)
    await s.waitFor(/failing: next try in [\d.]+ s, 1 failure in a row/)
  })

  it("works from the config file too (upstream = \"auto\")", async () => {
    const d = dir()
    const config = Path.join(d, "apps.toml")
    Fs.writeFileSync(
      config,
      `[services.plain]\nlisten = ["${d}/plain.sock"]\nupstream = "auto"\n` +
        `command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(plainApp)}]\n`
    )
    const s = soad(["-c", config])
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath: Path.join(d, "plain.sock") })
    expect(reply.port).toBeGreaterThan(0)
    expect(s.output()).toMatch(/\[plain\] app started \(pid \d+, [\d.]+ ms after the connection; upstream 127\.0\.0\.1:\d+\)/)
  })
})

