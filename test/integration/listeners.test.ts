/**
 * Listeners: every address form with a real socket and a real connection, several named listeners, socket file
 * permissions, inherited sockets (through systemd-socket-activate), and the errors around them.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appFixture, bin, eventually, freePort, get, root, soad, soadRun, tempDirs } from "../harness.js"

const dir = tempDirs()

const installed = (program: string) => ChildProcess.spawnSync("sh", ["-c", `command -v ${program}`]).status === 0

describe("address forms", () => {
  it.each([
    ["/path", (d: string) => Path.join(d, "a.sock")],
    ["unix:/path", (d: string) => `unix:${Path.join(d, "a.sock")}`]
  ])("%s", async (_, address) => {
    const d = dir()
    const s = soad(["-l", address(d), "--", "node", appFixture])
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath: Path.join(d, "a.sock") })
    expect(reply.fd).toBe(3)
    expect(reply.name).toBe("soad")
  })

  it("a relative path, resolved against soad's working directory", async () => {
    const d = dir()
    const s = soad(["-s", "rel.sock", "--", "node", appFixture], { cwd: d })
    await s.waitFor(new RegExp(`listening on ${d.replace(/[.]/g, "\\.")}/rel\\.sock`))
    expect((await get({ socketPath: Path.join(d, "rel.sock") })).fd).toBe(3)
  })

  it("@name, a Linux abstract socket (no file)", async () => {
    const name = `soad-test-${process.pid}-${Date.now()}`
    const s = soad(["-l", `@${name}`, "--", "node", appFixture])
    await s.waitFor(/listening on @/)
    // Node pads abstract names to the full sun_path; Python, like systemd and soad, uses the name's own length.
    const response = ChildProcess.execFileSync("python3", [
      "-c",
      `import socket; s = socket.socket(socket.AF_UNIX); s.connect("\\0${name}"); s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); print(s.makefile().read())`
    ], { encoding: "utf8" })
    const reply = JSON.parse(response.slice(response.indexOf("{"))) as { fd: number }
    expect(reply.fd).toBe(3)
  })

  it("HOST:PORT on IPv4", async () => {
    const port = await freePort()
    const s = soad(["-l", `127.0.0.1:${port}`, "--", "node", appFixture])
    await s.waitFor(/listening on 127\.0\.0\.1:/)
    expect((await get({ host: "127.0.0.1", port })).fd).toBe(3)
  })

  it("[V6]:PORT", async () => {
    const port = await freePort("::1")
    const s = soad(["-l", `[::1]:${port}`, "--", "node", appFixture])
    await s.waitFor(/listening on \[::1\]:/)
    expect((await get({ host: "::1", port })).fd).toBe(3)
  })

  it.each([[":PORT"], ["[::]:PORT"]])("%s listens on every interface, IPv6 and IPv4", async (form) => {
    const port = await freePort()
    const s = soad(["-l", form.replace("PORT", String(port)), "--", "node", appFixture])
    await s.waitFor(/listening on \[::\]:/)
    const v4 = await get({ host: "127.0.0.1", port })
    const v6 = await get({ host: "::1", port })
    expect(v4.pid).toBe(v6.pid)
  })

  it("a port in use is a clear error naming it", async () => {
    const port = await freePort()
    const blocker = Net.createServer()
    await new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", resolve))
    try {
      const result = soadRun(["-l", `127.0.0.1:${port}`, "--", "app"])
      expect(result.code).toBe(1)
      expect(result.stderr.trim()).toBe(
        `soad: 127.0.0.1:${port}: port ${port} is already in use: stop what uses it or choose another port`
      )
    } finally {
      blocker.close()
    }
  })

  it("a TCP port can be bound again at once after soad exits (SO_REUSEADDR)", async () => {
    const port = await freePort()
    const first = soad(["-l", `127.0.0.1:${port}`, "--", "node", appFixture])
    await first.waitFor(/listening on/)
    // The app closes these connections first, which leaves them in TIME_WAIT on soad's port.
    for (let i = 0; i < 5; i++) await get({ host: "127.0.0.1", port }, "/?close")
    first.process.kill("SIGTERM")
    expect(await first.exited).toBe(0)
    const timeWait = ChildProcess.execFileSync("ss", ["-tnH", "state", "time-wait", `sport = :${port}`], { encoding: "utf8" })
    expect(timeWait.trim().split("\n").filter((l) => l !== "").length).toBeGreaterThan(0)
    const second = soad(["-l", `127.0.0.1:${port}`, "--", "node", appFixture])
    await second.waitFor(/listening on/)
    expect((await get({ host: "127.0.0.1", port })).fd).toBe(3)
  })

  it("--backlog sets the listen backlog of every listener", async () => {
    const port = await freePort()
    const s = soad(["-l", `127.0.0.1:${port}`, "--backlog", "77", "--", "node", appFixture])
    await s.waitFor(/listening on/)
    // ss shows a listening TCP socket's backlog in its Send-Q column
    const line = ChildProcess.execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" }).trim()
    expect(line.split(/\s+/)[2]).toBe("77")
  })
})

describe("several listeners", () => {
  it("reach the app as fd 3 and 4 in order, with LISTEN_FDS=2 and their names; any of them activates it", async () => {
    const d = dir()
    const port = await freePort()
    const admin = Path.join(d, "admin.sock")
    const s = soad(["-l", `http=127.0.0.1:${port}`, "-l", `admin=${admin}`, "-t", "30", "--", "node", appFixture])
    await s.waitFor(/listening on 127\.0\.0\.1:\d+ \(http\)/)
    await s.waitFor(/listening on .*admin\.sock \(admin\)/)
    const viaAdmin = await get({ socketPath: admin }) // the second listener starts the app
    expect(viaAdmin).toMatchObject({ fd: 4, name: "admin", listenFds: 2 })
    const viaHttp = await get({ host: "127.0.0.1", port })
    expect(viaHttp).toMatchObject({ fd: 3, name: "http", listenFds: 2, pid: viaAdmin.pid })
    expect(s.count(/app started/)).toBe(1)
  })

  it("activity on any listener keeps the app running", async () => {
    const d = dir()
    const a = Path.join(d, "a.sock")
    const b = Path.join(d, "b.sock")
    const s = soad(["-s", a, "-s", b, "-t", "1", "--", "node", appFixture])
    await s.waitFor(/listening on .*b\.sock/)
    const first = await get({ socketPath: a })
    for (let i = 0; i < 6; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect((await get({ socketPath: b })).pid).toBe(first.pid) // only b is used now
    }
    expect(s.count(/stopping the app/)).toBe(0)
  })
})

describe("UNIX socket files", () => {
  it("--socket-mode, --socket-user and --socket-group (names and numbers)", async () => {
    const d = dir()
    const byName = Path.join(d, "n.sock")
    const byId = Path.join(d, "i.sock")
    const s1 = soad(["-s", byName, "--socket-mode", "0600", "--socket-user", "nobody", "--socket-group", "nogroup", "--", "app"])
    const s2 = soad(["-s", byId, "--socket-mode", "640", "--socket-user", "1234", "--socket-group", "4321", "--", "app"])
    await s1.waitFor(/listening on/)
    await s2.waitFor(/listening on/)
    const n = Fs.statSync(byName)
    expect([n.mode & 0o777, n.uid, n.gid]).toEqual([0o600, 65534, 65534])
    const i = Fs.statSync(byId)
    expect([i.mode & 0o777, i.uid, i.gid]).toEqual([0o640, 1234, 4321])
  })

  it("the default mode is 0666 whatever the umask (root's 022 made it 0644: a reverse proxy's workers could not connect)", async () => {
    const d = dir()
    const path = Path.join(d, "u.sock")
    const child = ChildProcess.spawn("sh", ["-c", `umask 027; exec "$0" "$@"`, process.execPath, bin, "-s", path, "--", "app"], {
      stdio: "ignore"
    })
    try {
      // The file is bound with mode 0 and given its mode before listen(): wait for that, not for the file alone.
      await eventually(() => Fs.existsSync(path) && (Fs.statSync(path).mode & 0o777) !== 0, 15_000, "the socket's mode")
      expect(Fs.statSync(path).mode & 0o777).toBe(0o666)
    } finally {
      child.kill("SIGKILL")
    }
  })

  it.each([
    [["--socket-mode", "999"], /--socket-mode: '999' is not an octal mode/],
    [["--socket-user", "no-such-user-x"], /--socket-user: no user "no-such-user-x"/],
    [["--socket-group", "no-such-group-x"], /--socket-group: no group "no-such-group-x"/]
  ])("%j is a usage error", (flags, pattern) => {
    const result = soadRun(["-s", Path.join(dir(), "x.sock"), ...flags, "--", "app"])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(pattern)
  })

  it("at exit soad removes only the file it created, not one that replaced it", async () => {
    const d = dir()
    const path = Path.join(d, "a.sock")
    const s = soad(["-s", path, "--", "app"])
    await s.waitFor(/listening on/)
    Fs.unlinkSync(path)
    Fs.writeFileSync(path, "not soad's")
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    expect(Fs.readFileSync(path, "utf8")).toBe("not soad's")
  })
})

describe("inherited sockets", () => {
  const launcher = installed("systemd-socket-activate") || process.env.CI === "true" ? it : it.skip

  launcher("soad under systemd-socket-activate passes fd:3 on (the first connection starts soad, then the app)", async () => {
    const port = await freePort()
    const s = ChildProcess.spawn(
      "systemd-socket-activate",
      ["-l", `127.0.0.1:${port}`, process.execPath, bin, "-l", "fd:3", "--", process.execPath, appFixture],
      { stdio: "ignore", env: { PATH: process.env.PATH } }
    )
    try {
      await new Promise((resolve) => setTimeout(resolve, 300))
      const reply = await get({ host: "127.0.0.1", port })
      expect(reply).toMatchObject({ fd: 3, listenFds: 1, name: "soad" })
      expect(reply.ppid).toBe(s.pid) // soad took the launcher's pid (exec), and is the app's parent
      const again = await get({ host: "127.0.0.1", port })
      expect(again.pid).toBe(reply.pid)
    } finally {
      s.kill("SIGTERM")
      await new Promise((resolve) => s.on("exit", resolve))
    }
  })

  launcher("by name: fd:NAME with LISTEN_FDNAMES, and the app sees that name", async () => {
    const port = await freePort()
    const s = ChildProcess.spawn(
      "systemd-socket-activate",
      ["-l", `127.0.0.1:${port}`, "--fdname=web", process.execPath, bin, "-l", "fd:web", "--", process.execPath, appFixture],
      { stdio: "ignore", env: { PATH: process.env.PATH } }
    )
    try {
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(await get({ host: "127.0.0.1", port })).toMatchObject({ fd: 3, name: "web" })
    } finally {
      s.kill("SIGTERM")
      await new Promise((resolve) => s.on("exit", resolve))
    }
  })

  it("LISTEN_FDS meant for another process (LISTEN_PID differs) is refused for fd:N, and says why", () => {
    const result = soadRun(["-l", "fd:3", "--", "app"], { env: { ...process.env, LISTEN_FDS: "1", LISTEN_PID: "1" } })
    expect(result.code).toBe(2)
    expect(result.stderr.trim()).toMatch(/^soad: fd:3: cannot use an inherited socket: LISTEN_PID is "1", not soad's pid \d+: the sockets are another process's$/)
  })

  it("without LISTEN_FDS, fd:N is an error that says so", () => {
    const env = { ...process.env }
    delete env.LISTEN_FDS
    const result = soadRun(["-l", "fd:3", "--", "app"], { env, cwd: root })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/fd:3: no such inherited socket; soad received no sockets \(LISTEN_FDS is not set\)/)
  })

  it("soad's own LISTEN_* variables never reach the app", async () => {
    const d = dir()
    const path = Path.join(d, "a.sock")
    const s = soad(["-s", path, "--", "node", appFixture], {
      env: { ...process.env, LISTEN_FDS: "5", LISTEN_PID: "1", LISTEN_FDNAMES: "x:y" }
    })
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath: path })
    expect(reply).toMatchObject({ listenFds: 1, name: "soad" })
  })
})
