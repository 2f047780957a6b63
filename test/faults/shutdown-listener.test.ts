/**
 * Fault: an app calls shutdown(2) on its fd 3 at its graceful stop (many C, C++ and Rust servers do, to wake threads
 * blocked in accept()). fd 3 is soad's own listening socket, so it stopped listening for soad too: clients got
 * ECONNREFUSED, soad read the dead socket (POLLHUP) as a waiting connection and restarted the app in a loop (220
 * starts in 11 s with min-uptime = 0), and a reload kept the dead listener.
 * Promise: soad notices, listens again (TCP) or makes the socket anew at the same address with the same mode and
 * owner (UNIX), says so once (`listener_revived`), and starts the app only for a real connection; one it cannot
 * bring back (an inherited UNIX socket) is said once (`listener_dead`), the service is failing, and nothing spins.
 *
 * The app is test/fixtures/shutdown_app.py --shutdown-on-term: a plain blocking accept() loop that calls
 * shutdown(3, SHUT_RDWR) at SIGTERM.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { bin, cpuSeconds, describeAsRoot, freePort, get, root, sleep, type Soad, soad, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()
const fixture = Path.join(root, "test", "fixtures", "shutdown_app.py")
const app = ["python3", fixture, "--shutdown-on-term"]
const appToml = app.map((arg) => JSON.stringify(arg)).join(", ")

/** The parsed JSON log lines of this event. */
const events = (s: Soad, name: string) =>
  s.lines.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>
      return entry.event === name ? [entry] : []
    } catch {
      return []
    }
  })

/**
 * One request, one idle stop (the app shuts fd 3 down on its way out) and its revival; then 3 quiet seconds without
 * a start (a loop restarted the app many times a second), and a request that starts the app exactly once more.
 */
const cycle = async (s: Soad, target: Parameters<typeof get>[0] | (() => Promise<Record<string, unknown>>), how: "relisten" | "reopened") => {
  const request = typeof target === "function" ? target : () => get(target)
  const first = await request()
  await s.waitFor(/"listener_revived"/)
  expect(events(s, "listener_revived")).toEqual([expect.objectContaining({ how })])
  expect(events(s, "started")).toHaveLength(1)
  await sleep(3000)
  expect(events(s, "started"), s.output()).toHaveLength(1)
  const second = await request()
  expect(second.pid).not.toBe(first.pid)
  expect(events(s, "started")).toHaveLength(2)
  expect(events(s, "listener_dead")).toEqual([])
  expect(events(s, "start_failed")).toEqual([])
}

describe("an app that shuts its listener down at its stop", () => {
  it("UNIX: soad makes the socket anew (same path, same mode), a new client connects, the app starts once more, no loop", async () => {
    const d = dir()
    const path = Path.join(d, "app.sock")
    const s = soad(["-s", path, "--socket-mode", "0660", "-t", "1", "--min-uptime", "0", "--log-format", "json", "--", ...app])
    await s.waitFor(/"listening"/)
    const inode = Fs.statSync(path).ino
    await cycle(s, { socketPath: path }, "reopened")
    const now = Fs.statSync(path)
    expect(now.ino).not.toBe(inode) // a new socket file, with the mode asked for
    expect(now.mode & 0o7777).toBe(0o660)
  })

  it("an abstract UNIX socket: soad binds the name anew", async () => {
    const name = `soad-test-${process.pid}-${Date.now()}`
    const s = soad(["-l", `@${name}`, "-t", "1", "--min-uptime", "0", "--log-format", "json", "--", ...app])
    await s.waitFor(/"listening"/)
    // Node pads abstract names to the full sun_path; Python, like systemd and soad, uses the name's own length.
    const request = async () => {
      const response = await new Promise<string>((resolve, reject) =>
        ChildProcess.execFile("python3", [
          "-c",
          `import socket; s = socket.socket(socket.AF_UNIX); s.connect("\\0${name}"); s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); print(s.makefile().read())`
        ], { encoding: "utf8" }, (error, stdout) => error === null ? resolve(stdout) : reject(error)))
      return JSON.parse(response.slice(response.indexOf("{"))) as Record<string, unknown>
    }
    await cycle(s, request, "reopened")
  })

  it("TCP: soad listens on it again, a new client connects, the app starts once more, no loop", async () => {
    const port = await freePort()
    const s = soad(["-l", `127.0.0.1:${port}`, "-t", "1", "--min-uptime", "0", "--log-format", "json", "--", ...app])
    await s.waitFor(/"listening"/)
    await cycle(s, { host: "127.0.0.1", port }, "relisten")
  })

  it("a reload, unchanged or restarting the service (whose app shuts fd 3 down at the stop), keeps a working listener", async () => {
    const d = dir()
    const path = Path.join(d, "app.sock")
    const service = (extra: string) => `[services.a]\nlisten = ["${path}"]\ncommand = [${appToml}]\ntime-until-stop = 60\n${extra}`
    const config = writeConfig(d, service(""))
    const s = soad(["-c", config, "--log-format", "json", "--control", Path.join(d, "control.sock")])
    await s.waitFor(/"listening"/)
    const first = await get({ socketPath: path })
    s.process.kill("SIGHUP")
    await s.waitFor(/"reloaded"/)
    expect((await get({ socketPath: path })).pid).toBe(first.pid) // unchanged: the same app
    writeConfig(d, service("env = { CHANGED = \"1\" }\n"))
    s.process.kill("SIGHUP")
    await s.waitFor(/"reloaded".*restarted/)
    await s.waitFor(/"listener_revived"/)
    const second = await get({ socketPath: path })
    expect(second.pid).not.toBe(first.pid)
    await sleep(2000)
    expect(events(s, "started"), s.output()).toHaveLength(2)
  })
})

describeAsRoot("an app that shuts its listener down, with a socket owner", () => {
  it("the UNIX socket made anew has the same mode and owner", async () => {
    const d = dir()
    const path = Path.join(d, "app.sock")
    const s = soad([
      "-s", path, "--socket-mode", "0660", "--socket-user", "nobody", "--socket-group", "nogroup",
      "-t", "1", "--min-uptime", "0", "--log-format", "json", "--", ...app
    ])
    await s.waitFor(/"listening"/)
    const before = Fs.statSync(path)
    await cycle(s, { socketPath: path }, "reopened")
    const after = Fs.statSync(path)
    expect(after.ino).not.toBe(before.ino)
    expect([after.mode & 0o7777, after.uid, after.gid]).toEqual([0o660, 65534, before.gid])
    expect(before.uid).toBe(65534)
  })
})

/**
 * soad started by a launcher that binds the listener itself and passes it as fd 3 (LISTEN_FDS=1, as systemd does):
 * python binds it and execs soad in the same process.
 */
const inherited = (bind: string, args: ReadonlyArray<string>) => {
  const launcher = ChildProcess.spawn("python3", [
    "-c",
    [
      "import os, socket, sys",
      bind,
      "s.listen(16)",
      "if s.fileno() != 3: os.dup2(s.fileno(), 3)",
      "os.set_inheritable(3, True)",
      "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))",
      "os.execv(sys.argv[1], sys.argv[1:])"
    ].join("\n"),
    process.execPath,
    bin,
    "-l",
    "fd:3",
    ...args
  ], { stdio: ["ignore", "pipe", "pipe"] })
  const lines: Array<string> = []
  let buffer = ""
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString()
    for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
      lines.push(buffer.slice(0, newline))
      buffer = buffer.slice(newline + 1)
    }
  }
  launcher.stdout.on("data", onData)
  launcher.stderr.on("data", onData)
  const exited = new Promise((resolve) => launcher.on("exit", resolve))
  const named = (name: string) => lines.filter((line) => line.includes(`"event":"${name}"`))
  const waitFor = async (name: string) => {
    for (let i = 0; i < 500 && named(name).length === 0; i++) await sleep(20)
    expect(named(name), lines.join("\n")).not.toHaveLength(0)
  }
  const stop = async () => {
    launcher.kill("SIGTERM")
    await exited
  }
  return { pid: launcher.pid!, lines, named, waitFor, stop }
}

describe("an inherited listener the app shuts down", () => {
  it("TCP: soad listens on it again", async () => {
    const port = await freePort()
    const s = inherited(
      `s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", ${port}))`,
      ["-t", "1", "--min-uptime", "0", "--log-format", "json", "--", ...app]
    )
    try {
      await s.waitFor("listening")
      const first = await get({ host: "127.0.0.1", port })
      await s.waitFor("listener_revived")
      expect(s.named("listener_revived")[0]).toContain(`"how":"relisten"`)
      const second = await get({ host: "127.0.0.1", port })
      expect(second.pid).not.toBe(first.pid)
    } finally {
      await s.stop()
    }
  })

  it("shut down by another process that holds it while soad waits (armed): nothing starts, soad listens again", async () => {
    const port = await freePort()
    // A child of the launcher keeps the socket and shuts it down 2 s later, while soad waits with it armed.
    const s = inherited(
      `s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", ${port}))\n` +
        `import time\nif os.fork() == 0:\n    time.sleep(2); s.listen(16); s.shutdown(socket.SHUT_RDWR); os._exit(0)`,
      ["-t", "1", "--log-format", "json", "--", ...app]
    )
    try {
      await s.waitFor("listening")
      await s.waitFor("listener_revived")
      expect(s.named("listener_revived")[0]).toContain(`"how":"relisten"`)
      await sleep(1000)
      expect(s.named("started"), s.lines.join("\n")).toHaveLength(0)
      await get({ host: "127.0.0.1", port })
      expect(s.named("started")).toHaveLength(1)
    } finally {
      await s.stop()
    }
  })

  it("UNIX: it cannot be bound again by soad: said once, the service is failing, no start loop, soad does not spin", async () => {
    const d = dir()
    const path = Path.join(d, "inherited.sock")
    const s = inherited(
      `s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`,
      ["-t", "1", "--min-uptime", "0", "--log-format", "json", "--", ...app]
    )
    try {
      await s.waitFor("listening")
      await get({ socketPath: path })
      await s.waitFor("listener_dead")
      expect(s.named("listener_dead")[0]).toContain("soad cannot bind an inherited socket again")
      const cpu = cpuSeconds(s.pid)
      await sleep(3000)
      expect(s.named("started"), s.lines.join("\n")).toHaveLength(1)
      expect(s.named("listener_dead")).toHaveLength(1)
      expect(s.named("failing").length).toBeGreaterThan(0)
      // A loop polled the dead socket (or restarted the app) without pause: a core's worth of CPU in 3 s.
      expect(cpuSeconds(s.pid) - cpu).toBeLessThan(1)
    } finally {
      await s.stop()
    }
  })
})
