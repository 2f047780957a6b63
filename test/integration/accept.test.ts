/**
 * `--accept`: a process per connection (inetd, systemd Accept=yes), with real sockets and real processes: each
 * instance has the connection as stdin, stdout and fd 3 with systemd's variables, --max-connections holds the
 * others in the backlog (never refused), a shutdown stops every instance, and the config file's keys are checked.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as ChildProcess from "node:child_process"
import { alive, describeAsRoot, eventually, freePort, sleep, soad, soadRun, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()

/**
 * The per-connection program: says who it is (pid, LISTEN_*, REMOTE_*, whether fds 0, 1 and 3 are one socket) as a
 * JSON line on stdout, then echoes each line it reads on stdin, prefixed "echo:", and writes "fd3:" lines on fd 3;
 * it exits at "bye" or end of input. On SIGTERM it writes its pid into the directory given as argv[1], then exits.
 */
const instanceScript = `
import json, os, signal, sys
def term(signum, frame):
    if len(sys.argv) > 1:
        open(os.path.join(sys.argv[1], "term-%d" % os.getpid()), "w").close()
    os._exit(0)
signal.signal(signal.SIGTERM, term)
same = len({(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (0, 1, 3)}) == 1
env = {k: os.environ.get(k) for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "REMOTE_ADDR", "REMOTE_PORT")}
sys.stderr.write("instance %d on stderr\\n" % os.getpid())
sys.stderr.flush()
sys.stdout.write(json.dumps(dict(pid=os.getpid(), same_socket=same, **env)) + "\\n")
sys.stdout.flush()
for line in sys.stdin:
    line = line.strip()
    if line == "bye":
        break
    sys.stdout.write("echo:" + line + "\\n")
    sys.stdout.flush()
    os.write(3, ("fd3:" + line + "\\n").encode())
`

const writeInstance = (d: string): string => {
  const path = Path.join(d, "instance.py")
  Fs.writeFileSync(path, instanceScript)
  return path
}

/** A client: connects (from `localAddress`, if given), and gives the lines it receives as they come. */
const client = (
  target: { readonly path: string } | { readonly host: string; readonly port: number; readonly localAddress?: string }
) => {
  const socket = Net.connect(target)
  const lines: Array<string> = []
  let buffer = ""
  let error: Error | undefined
  let closed = false
  socket.on("data", (chunk) => {
    buffer += chunk.toString()
    let newline: number
    while ((newline = buffer.indexOf("\n")) >= 0) {
      lines.push(buffer.slice(0, newline))
      buffer = buffer.slice(newline + 1)
    }
  })
  socket.on("error", (e) => (error = e))
  socket.on("close", () => (closed = true))
  return {
    socket,
    lines,
    get error() {
      return error
    },
    get closed() {
      return closed
    },
    /** The instance's first line, parsed. */
    hello: async () => {
      await eventually(() => lines.length > 0 || closed, 10_000, "the instance's first line")
      return JSON.parse(lines[0]!) as Record<string, unknown>
    },
    send: (line: string) => socket.write(line + "\n")
  }
}

describe("--accept", () => {
  it("UNIX socket: the connection is stdin, stdout and fd 3, with LISTEN_FDS=1 and LISTEN_PID the instance's pid", async () => {
    const d = dir()
    const path = Path.join(d, "echo.sock")
    const s = soad(["-s", path, "--accept", "--", "python3", writeInstance(d)])
    await s.waitFor(/a process per connection/)
    const c = client({ path })
    const hello = await c.hello()
    expect(hello).toMatchObject({
      same_socket: true,
      LISTEN_FDS: "1",
      LISTEN_PID: String(hello.pid),
      LISTEN_FDNAMES: "connection",
      REMOTE_ADDR: null,
      REMOTE_PORT: null
    })
    c.send("hello")
    await eventually(() => c.lines.length >= 3, 15_000, "the echo on stdout and fd 3")
    expect(c.lines.slice(1)).toEqual(["echo:hello", "fd3:hello"])
    c.send("bye")
    await eventually(() => c.closed, 15_000, "the instance to end with its connection")
    await eventually(() => !alive(hello.pid as number), 15_000, "the instance to be gone")
    // Its stderr is not the connection: soad logs it as any app's.
    await s.waitFor(new RegExp(`instance ${hello.pid} on stderr`))
    // A second connection gets an instance of its own.
    const again = await client({ path }).hello()
    expect(again.pid).not.toBe(hello.pid)
  })

  it("TCP: REMOTE_ADDR and REMOTE_PORT name the client, IPv4 and IPv6 as systemd writes them", async () => {
    const d = dir()
    const script = writeInstance(d)
    const [port4, port6, portAny] = [await freePort(), await freePort("::1"), await freePort("::")]
    const s = soad(["-l", `127.0.0.1:${port4}`, "-l", `[::1]:${port6}`, "-l", `[::]:${portAny}`, "--accept", "--", "python3", script])
    await s.waitFor(/a process per connection/)
    const c4 = client({ host: "127.0.0.1", port: port4 })
    await eventually(() => c4.socket.localPort !== undefined, 15_000, "a connection")
    expect(await c4.hello()).toMatchObject({ REMOTE_ADDR: "127.0.0.1", REMOTE_PORT: String(c4.socket.localPort), LISTEN_FDS: "1" })
    const c6 = client({ host: "::1", port: port6 })
    expect(await c6.hello()).toMatchObject({ REMOTE_ADDR: "::1", REMOTE_PORT: String(c6.socket.localPort) })
    // An IPv4 client of a dual-stack listener: its IPv4-mapped address is written as IPv4, as systemd does.
    const mapped = client({ host: "127.0.0.1", port: portAny })
    expect(await mapped.hello()).toMatchObject({ REMOTE_ADDR: "127.0.0.1", REMOTE_PORT: String(mapped.socket.localPort) })
    for (const c of [c4, c6, mapped]) c.send("bye")
  })

  it("--max-connections 2: four clients holding on; two instances at a time, the others served in turn, none refused", async () => {
    const d = dir()
    const path = Path.join(d, "echo.sock")
    const s = soad(["-s", path, "--accept", "--max-connections", "2", "--", "python3", writeInstance(d)])
    await s.waitFor(/at most 2 at once/)
    // Fault: more clients than the bound, all holding their connections. Promise: at most 2 instances exist, the
    // others wait (connected, in the backlog), and each is served once one ends.
    const clients = [0, 1, 2, 3].map(() => client({ path }))
    await eventually(() => clients.filter((c) => c.lines.length > 0).length === 2, 10_000, "two instances")
    await sleep(500)
    const served = () => clients.filter((c) => c.lines.length > 0)
    expect(served()).toHaveLength(2)
    const pids = new Set<number>()
    const liveInstances = () => [...pids].filter(alive).length
    for (const c of served()) pids.add((await c.hello()).pid as number)
    expect(liveInstances()).toBe(2)
    expect(clients.some((c) => c.error !== undefined || c.closed)).toBe(false)
    // One leaves: exactly one waiting client is served.
    const [first] = served()
    first!.send("bye")
    await eventually(() => served().length === 3, 10_000, "a third instance")
    for (const c of served()) pids.add((await c.hello()).pid as number)
    await eventually(() => liveInstances() === 2, 15_000, "the first instance gone")
    for (const c of served()) if (c !== first) c.send("bye")
    await eventually(() => served().length === 4, 10_000, "the fourth instance")
    for (const c of served()) pids.add((await c.hello()).pid as number)
    expect(pids.size).toBe(4)
    clients[3]!.send("bye")
    await eventually(() => liveInstances() === 0, 15_000, "every instance gone")
    expect(clients.every((c) => c.error === undefined)).toBe(true)
  })

  it("--max-connections 4 --max-connections-per-source 2: idle clients of one address hold 2 instances, the next is closed at once; other addresses are served", async () => {
    const d = dir()
    const script = writeInstance(d)
    const [port, metricsPort] = [await freePort("::"), await freePort()]
    const s = soad([
      "-l", `[::]:${port}`, "--accept", "--max-connections", "4", "--max-connections-per-source", "2",
      "--metrics", `127.0.0.1:${metricsPort}`, "--log-format", "json", "--", "python3", script
    ])
    await s.waitFor(/"event":"accept_mode"/)
    // Attack: one address opens idle connections to take every instance. Promise: it gets two; its third is
    // closed at once (not left waiting), and clients from elsewhere still get an instance.
    const idle = [client({ host: "127.0.0.1", port }), client({ host: "127.0.0.1", port })]
    for (const c of idle) expect(await c.hello()).toMatchObject({ REMOTE_ADDR: "127.0.0.1" })
    const third = client({ host: "127.0.0.1", port })
    await eventually(() => third.closed, 10_000, "the third connection from 127.0.0.1 to be closed")
    expect(third.lines).toEqual([])
    const refused = JSON.parse(await s.waitFor(/"event":"accept_refused"/)) as Record<string, unknown>
    expect(refused).toMatchObject({ level: "warn", reason: "per_source", source: "127.0.0.1", count: 1, max_connections_per_source: 2 })
    const other = client({ host: "127.0.0.1", port, localAddress: "127.0.0.2" })
    expect(await other.hello()).toMatchObject({ REMOTE_ADDR: "127.0.0.2" })
    const v6 = client({ host: "::1", port })
    expect(await v6.hello()).toMatchObject({ REMOTE_ADDR: "::1" })
    const metrics = await new Promise<string>((resolve, reject) => {
      Net.connect(metricsPort, "127.0.0.1", function(this: Net.Socket) {
        let text = ""
        this.on("data", (chunk) => (text += chunk.toString()))
        this.on("end", () => resolve(text))
        this.write("GET /metrics HTTP/1.0\r\n\r\n")
      }).on("error", reject)
    })
    expect(metrics).toContain(`soad_accept_refused_total{service="python3",reason="per_source"} 1`)
    for (const c of [...idle, other, v6]) c.send("bye")
  })

  it("soad check shows the limits of accept mode: the defaults, or what the file sets", () => {
    const d = dir()
    const config = writeConfig(d, `
[services.echo]
listen = ["${d}/echo.sock"]
command = ["cat"]
accept = true
[services.tight]
listen = ["${d}/tight.sock"]
command = ["cat"]
accept = true
max-connections = 8
max-connections-per-source = 2
max-accept-rate = "10/s"
`)
    const checked = soadRun(["check", config])
    expect(checked.code, checked.stderr).toBe(0)
    expect(checked.stdout).toContain(
      "accept   a process per connection, at most 64 at once, at most 32 per client address and 64 per UNIX peer's uid, 200 started per 2s"
    )
    expect(checked.stdout).toContain("accept   a process per connection, at most 8 at once, at most 2 per source, 10 started per 1s")
  })

  it("SIGTERM to soad: running instances get the signal and are gone, and the socket file is removed", async () => {
    const d = dir()
    const path = Path.join(d, "echo.sock")
    const marks = Path.join(d, "marks")
    Fs.mkdirSync(marks)
    const s = soad(["-s", path, "--accept", "--stop-timeout", "5", "--", "python3", writeInstance(d), marks])
    await s.waitFor(/a process per connection/)
    const clients = [client({ path }), client({ path })]
    const pids = await Promise.all(clients.map(async (c) => (await c.hello()).pid as number))
    expect(pids.every(alive)).toBe(true)
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    expect(Fs.readdirSync(marks).sort()).toEqual(pids.map((pid) => `term-${pid}`).sort())
    expect(pids.some(alive)).toBe(false)
    expect(Fs.existsSync(path)).toBe(false)
  })

  it("config file: accept = true and max-connections serve a process per connection", async () => {
    const d = dir()
    const path = Path.join(d, "echo.sock")
    const config = writeConfig(d, `
[services.echo]
listen = ["${path}"]
command = ["python3", "${writeInstance(d)}"]
accept = true
max-connections = 1
`)
    const checked = soadRun(["check", config])
    expect(checked.code).toBe(0)
    expect(checked.stdout).toContain("accept   a process per connection, at most 1 at once")
    const s = soad(["-c", config, "--control", Path.join(d, "control.sock")])
    await s.waitFor(/at most 1 at once/)
    const [a, b] = [client({ path }), client({ path })]
    const hello = await a.hello()
    await sleep(300)
    expect(b.lines).toHaveLength(0) // waits: one at a time
    const status = soadRun(["status", "--json", "--control", Path.join(d, "control.sock")])
    expect(JSON.parse(status.stdout), status.stderr).toMatchObject([{ name: "echo", state: "running", instances: 1, activations: 1 }])
    a.send("bye")
    expect((await b.hello()).pid).not.toBe(hello.pid)
    b.send("bye")
  })

  it("soad check refuses a max-connections that is not a whole number >= 1, and accept with upstream, one line each", () => {
    const d = dir()
    const config = writeConfig(d, `
[services.a]
listen = ["${d}/a.sock"]
command = ["cat"]
accept = true
max-connections = 0
[services.b]
listen = ["${d}/b.sock"]
command = ["cat"]
accept = true
max-connections = "many"
[services.c]
listen = ["${d}/c.sock"]
command = ["cat"]
accept = true
upstream = "127.0.0.1:3000"
[services.d]
listen = ["${d}/d.sock"]
command = ["cat"]
accept = "yes"
[services.e]
listen = ["${d}/e.sock"]
command = ["cat"]
accept = true
ready = "notify"
`)
    const result = soadRun(["check", config])
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split("\n")).toEqual([
      `soad: ${config}: services.a.max-connections: expected a whole number, 1 or more, found 0`,
      `soad: ${config}: services.b.max-connections: expected a whole number, 1 or more, found "many"`,
      `soad: ${config}: services.c: accept = true (a process per connection) cannot be combined with upstream (proxy mode): choose one`,
      `soad: ${config}: services.d.accept: expected true or false, found "yes"`,
      `soad: ${config}: services.e: ready = "notify" has no meaning with accept = true (an instance serves the connection it was started with): drop one`
    ])
  })

  it("the command line refuses --accept with --upstream or --ready notify, and a bad --max-connections, one line, exit 2", () => {
    const path = Path.join(dir(), "a.sock")
    for (
      const [args, pattern] of [
        [["--accept", "--upstream", "127.0.0.1:3000"], /--accept \(a process per connection\) cannot be combined with --upstream/],
        [["--accept", "--max-connections", "0"], /--max-connections: .*whole number, 1 or more/],
        [["--accept", "--max-connections", "1.5"], /--max-connections/],
        [["--max-connections", "4"], /--max-connections works with --accept only/],
        [["--max-connections-per-source", "2"], /--max-connections-per-source works with --accept only/],
        [["--max-accept-rate", "10/s"], /--max-accept-rate works with --accept only/],
        [["--accept", "--max-accept-rate", "10"], /--max-accept-rate: '10' is not a rate N\/DURATION/],
        [["--accept", "--max-connections", "4", "--max-connections-per-source", "5"], /--max-connections-per-source is 5, more than --max-connections \(4\)/],
        [["--accept", "--ready", "notify"], /--ready notify has no meaning with --accept/]
      ] as const
    ) {
      const result = soadRun(["-s", path, ...args, "--", "cat"])
      expect(result.code, result.stderr).toBe(2)
      expect(result.stderr.trim().split("\n"), result.stderr).toHaveLength(1)
      expect(result.stderr).toMatch(pattern)
      expect(Fs.existsSync(path)).toBe(false)
    }
  })
})

describeAsRoot("--accept on a UNIX socket: the source is the peer's uid", () => {
  it("--max-connections-per-source 1: root's second connection is closed at once, nobody's is served", async () => {
    const d = dir()
    Fs.chmodSync(d, 0o777)
    const path = Path.join(d, "echo.sock")
    const s = soad([
      "-s", path, "--socket-mode", "0666", "--accept", "--max-connections", "4", "--max-connections-per-source", "1",
      "--log-format", "json", "--", "python3", writeInstance(d)
    ])
    await s.waitFor(/"event":"accept_mode"/)
    const mine = client({ path })
    await mine.hello()
    const again = client({ path })
    await eventually(() => again.closed, 10_000, "root's second connection to be closed")
    expect(again.lines).toEqual([])
    expect(JSON.parse(await s.waitFor(/"event":"accept_refused"/))).toMatchObject({ source: "uid 0", count: 1 })
    // Another local user: its own share. (node as nobody prints the instance's first line.)
    const connect = "const s = require('net').connect(process.argv[1]); s.on('data', (d) => { process.stdout.write(d); process.exit(0) })"
    const nobody = ChildProcess.spawnSync(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", connect, path],
      { encoding: "utf8", timeout: 10_000 }
    )
    expect(nobody.status, nobody.stderr).toBe(0)
    expect(JSON.parse(nobody.stdout.split("\n")[0]!)).toMatchObject({ LISTEN_FDS: "1", REMOTE_ADDR: null })
    mine.send("bye")
  })
})
