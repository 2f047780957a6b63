/**
 * Finding the running soads and talking to them, as the control commands do, against a temporary directory of
 * sockets: small fake soads (real UNIX sockets answering canned JSON), a socket a killed soad left (bound, nobody
 * listening), and files that are not sockets.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { PassThrough } from "node:stream"
import { afterEach, describe, expect, it } from "vitest"
import * as ControlVerbs from "../../src/cli/controlVerbs.js"
import type { ControlCommand } from "../../src/cli/controlArgs.js"
import * as ControlPaths from "../../src/observe/controlPaths.js"
import type { Response, ServiceReport } from "../../src/observe/controlProtocol.js"

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup()
})

const tempDir = (): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-verbs-"))
  cleanups.push(() => Fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

const service = (name: string): ServiceReport => ({
  name, state: "stopped", pid: null, uptime_s: null, idle_s: null, memory_bytes: null, activations: 0, idle_stops: 0,
  crashes: 0, failed_starts: 0, listeners: [`/run/${name}.sock`], peak_memory_bytes: null, saved_byte_seconds: 0,
  last_error: null, last_error_age_s: null
})

/** A fake soad at `path`: answers each request line with `answer(request)`; the requests it got. */
const fakeSoad = async (path: string, answer: (request: Record<string, unknown>) => Response): Promise<Array<Record<string, unknown>>> => {
  const got: Array<Record<string, unknown>> = []
  const server = Net.createServer((socket) => {
    let buffer = ""
    socket.on("error", () => {})
    socket.on("data", (chunk) => {
      buffer += chunk.toString()
      if (!buffer.includes("\n")) return
      const request = JSON.parse(buffer.slice(0, buffer.indexOf("\n"))) as Record<string, unknown>
      got.push(request)
      socket.end(JSON.stringify(answer(request)) + "\n")
    })
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  cleanups.push(() => server.close())
  return got
}

/** A socket file nobody listens on, as a killed soad leaves it (bound, never listening: python3, as Node cannot). */
const staleSocket = (path: string, ageMs = 0): void => {
  ChildProcess.execFileSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path])
  if (ageMs > 0) {
    const then = new Date(Date.now() - ageMs)
    Fs.utimesSync(path, then, then)
  }
}

/** A soad answering status with these services, wake/sleep/restart with "NAME: done" if it has NAME. */
const soadOf = (path: string, names: ReadonlyArray<string>) =>
  fakeSoad(path, (request) => {
    if (request.command === "status") return { ok: true, services: names.map(service) }
    const name = request.service as string
    return names.includes(name) ? { ok: true, message: `${name}: ${String(request.command)} done` } : {
      ok: false,
      error: `no service '${name}'; the services are ${names.join(", ")}`
    }
  })

/** Runs a control command with SOAD_CONTROL_DIR=dir: its exit code, stdout and stderr. */
const run = async (dir: string, command: ControlCommand, env: NodeJS.ProcessEnv = {}, signal?: AbortSignal) => {
  const out = new PassThrough()
  const err = new PassThrough()
  const outText: Array<string> = []
  const errText: Array<string> = []
  out.on("data", (chunk) => outText.push(String(chunk)))
  err.on("data", (chunk) => errText.push(String(chunk)))
  const code = await ControlVerbs.run(command, { out, err, env: { SOAD_CONTROL_DIR: dir, ...env }, ...(signal === undefined ? {} : { signal }) })
  return { code, stdout: outText.join(""), stderr: errText.join("") }
}

const status = (patterns: ReadonlyArray<string> = [], json = false): ControlCommand => ({ verb: "status", json, all: false, patterns, which: {} })
const wake = (service: string, which = {}): ControlCommand => ({ verb: "wake", typed: "wake", service, which })

describe("where control sockets are", () => {
  it("$SOAD_CONTROL_DIR alone, else $XDG_RUNTIME_DIR/soad then /run/soad", () => {
    expect(ControlPaths.directories({ SOAD_CONTROL_DIR: "/srv/ctl", XDG_RUNTIME_DIR: "/run/user/1000" })).toEqual(["/srv/ctl"])
    expect(ControlPaths.directories({ XDG_RUNTIME_DIR: "/run/user/0" })).toEqual(["/run/user/0/soad", "/run/soad"])
    expect(ControlPaths.directories({ XDG_RUNTIME_DIR: "" })).toEqual(["/run/soad"])
    expect(ControlPaths.socketOf("blog", { XDG_RUNTIME_DIR: "/run/user/1000" })).toBe("/run/user/1000/soad/blog.sock")
  })

  it("lists the sockets with an instance's name, in order; other files are neither listed nor touched", async () => {
    const dir = tempDir()
    await soadOf(Path.join(dir, "wiki.sock"), [])
    await soadOf(Path.join(dir, "blog-1f0c9a2e.sock"), [])
    staleSocket(Path.join(dir, "old.sock"))
    Fs.writeFileSync(Path.join(dir, "notes.sock"), "not a socket")
    await soadOf(Path.join(dir, ".hidden.sock"), [])
    await soadOf(Path.join(dir, "other"), [])
    expect(ControlPaths.found({ SOAD_CONTROL_DIR: dir }).map((f) => f.instance)).toEqual(["blog-1f0c9a2e", "old", "wiki"])
    expect(ControlPaths.found({ SOAD_CONTROL_DIR: Path.join(dir, "none") })).toEqual([])
    expect(Fs.readFileSync(Path.join(dir, "notes.sock"), "utf8")).toBe("not a socket")
  })

  it("a socket nobody listens on is removed only when it is ours, a socket, and older than any start-up", () => {
    const dir = tempDir()
    const young = Path.join(dir, "young.sock")
    const old = Path.join(dir, "old.sock")
    const file = Path.join(dir, "file.sock")
    staleSocket(young)
    staleSocket(old, ControlPaths.staleAfterMs + 5000)
    Fs.writeFileSync(file, "")
    Fs.utimesSync(file, new Date(0), new Date(0))
    const me = process.getuid?.()
    expect(ControlPaths.removeStale(young, me)).toBe(false) // a soad starting now: bound, not listening yet
    expect(ControlPaths.removeStale(old, me === undefined ? 1 : me + 1)).toBe(false) // another user's
    expect(ControlPaths.removeStale(file, me)).toBe(false) // not a socket
    expect(ControlPaths.removeStale(old, me)).toBe(true)
    expect([Fs.existsSync(young), Fs.existsSync(old), Fs.existsSync(file)]).toEqual([true, false, true])
  })
})

describe("finding the soad to ask", () => {
  it("with one soad running, every verb finds it with no flag, past sockets killed soads left", async () => {
    const dir = tempDir()
    const got = await soadOf(Path.join(dir, "blog-1f0c9a2e.sock"), ["blog"])
    staleSocket(Path.join(dir, "gone-00000000.sock"))
    staleSocket(Path.join(dir, "older-00000000.sock"), ControlPaths.staleAfterMs + 5000)
    expect(await run(dir, wake("blog"))).toEqual({ code: 0, stdout: "blog: wake done\n", stderr: "" })
    expect(got.map((request) => request.command)).toEqual(["wake"]) // the probe sent nothing
    expect(Fs.existsSync(Path.join(dir, "gone-00000000.sock"))).toBe(true) // young: kept
    expect(Fs.existsSync(Path.join(dir, "older-00000000.sock"))).toBe(false) // ours, stale and old: removed
  })

  it("with several running, a verb refuses with their names and how to pick one; --name and -c pick", async () => {
    const dir = tempDir()
    await soadOf(Path.join(dir, "apps-1f0c9a2e.sock"), ["blog"])
    await soadOf(Path.join(dir, "wiki.sock"), ["wiki"])
    const asked = await run(dir, wake("blog"))
    expect(asked).toEqual({
      code: 2,
      stdout: "",
      stderr: "soad: 2 soads are running (apps-1f0c9a2e, wiki): say which with --name, e.g. soad wake blog --name apps-1f0c9a2e (see soad --help)\n"
    })
    expect(await run(dir, wake("wiki", { name: "wiki" }))).toMatchObject({ code: 0, stdout: "wiki: wake done\n" })
    expect(await run(dir, wake("x", { control: Path.join(dir, "wiki.sock") }))).toMatchObject({
      code: 1,
      stderr: "soad: no service 'x'; the services are wiki\n"
    })
    const config = Path.join(dir, "apps.toml")
    Fs.writeFileSync(config, "")
    await soadOf(Path.join(dir, `${ControlPaths.instanceOf(config)}.sock`), ["shop"])
    expect(await run(dir, wake("shop", { config }))).toMatchObject({ code: 0, stdout: "shop: wake done\n" })
  })

  it("with none running, says where it looked", async () => {
    const dir = tempDir()
    staleSocket(Path.join(dir, "gone.sock"))
    expect(await run(dir, wake("blog"))).toEqual({
      code: 1,
      stdout: "",
      stderr: `soad: no soad is running: no control socket answers in ${dir} (a soad started with --control PATH is asked with the same --control PATH)\n`
    })
    expect((await run(dir, wake("blog", { name: "blog" }))).stderr).toBe(
      `soad: no soad is running with control socket ${dir}/blog.sock (give its --control PATH, --name NAME or -c FILE)\n`
    )
  })
})

describe("soad sleep 30: an app's command without --", () => {
  it("a verb whose NAME is a number no soad has says so and how to run it as the app", async () => {
    // Fault: `soad sleep 30` (meant: run `sleep 30` as the app) was sent as a request to whatever soad owns the
    // control socket, and said only "no service '30'". Promise: refused, with the line to use.
    const dir = tempDir()
    await soadOf(Path.join(dir, "blog.sock"), ["blog"])
    const sleep: ControlCommand = { verb: "sleep", typed: "sleep", service: "30", which: {} }
    expect(await run(dir, sleep)).toEqual({
      code: 1,
      stdout: "",
      stderr: "soad: no service '30'; the services are blog; to run 'sleep 30' as the app, give it after --, e.g. soad -s PATH -- sleep 30\n"
    })
    // No soad at all: the same hint.
    expect((await run(tempDir(), sleep)).stderr).toMatch(/^soad: no soad is running: .*; to run 'sleep 30' as the app, give it after --/)
    // A name that is no number is only said to be unknown.
    expect((await run(dir, wake("bolg"))).stderr).toBe("soad: no service 'bolg'; the services are blog\n")
  })
})

describe("soad status of several soads", () => {
  it("lists each soad's services under its name; --json has every service with its instance", async () => {
    const dir = tempDir()
    await soadOf(Path.join(dir, "apps-1f0c9a2e.sock"), ["blog", "shop"])
    await soadOf(Path.join(dir, "wiki.sock"), ["wiki"])
    staleSocket(Path.join(dir, "gone.sock"))
    const listed = await run(dir, status())
    expect(listed.code).toBe(0)
    expect(listed.stderr).toBe("")
    const blocks = listed.stdout.trimEnd().split("\n\n")
    expect(blocks).toHaveLength(2)
    expect(blocks[0]).toMatch(/^apps-1f0c9a2e: 2 services: 2 stopped; 0M in use, 0 MB·h saved\nSERVICE\s.*\nblog\s.*\nshop\s.*\ntotal\s/)
    expect(blocks[1]).toMatch(/^wiki: 1 service: 1 stopped; .*\nSERVICE\s.*\nwiki\s.*\ntotal\s/)
    const json = JSON.parse((await run(dir, status([], true))).stdout) as Array<{ instance: string; name: string }>
    expect(json.map((s) => [s.instance, s.name])).toEqual([["apps-1f0c9a2e", "blog"], ["apps-1f0c9a2e", "shop"], ["wiki", "wiki"]])
    // a pattern shows the soads that have a match
    const shop = await run(dir, status(["sh*"]))
    expect(shop.stdout).toMatch(/^apps-1f0c9a2e: 2 services/)
    expect(shop.stdout).not.toMatch(/wiki/)
    expect(await run(dir, status(["nope*"]))).toMatchObject({
      code: 1,
      stderr: "soad: no service matches 'nope*'; the services are blog, shop, wiki\n"
    })
    expect(await run(dir, status(["nope"]))).toMatchObject({ code: 1, stderr: "soad: no service 'nope'; the services are blog, shop, wiki\n" })
  })

  it("with one soad, prints its summary and table without a heading", async () => {
    const dir = tempDir()
    await soadOf(Path.join(dir, "blog.sock"), ["blog"])
    expect((await run(dir, status())).stdout).toMatch(/^1 service: 1 stopped; 0M in use, 0 MB·h saved\nSERVICE\s/)
  })
})

describe("soad reload", () => {
  it("prints the summary; a refused file's errors and exit 1; exit 1 when a service could not be applied", async () => {
    const dir = tempDir()
    const answers: Array<Response> = [
      { ok: true, message: "reloaded /etc/soad/apps.toml: blog added, wiki unchanged" },
      { ok: false, error: "the reload failed: soad keeps running the config it had", details: ["apps.toml: line 3: bad key", "apps.toml: services.x.listen: missing"] },
      { ok: true, message: "reloaded /etc/soad/apps.toml: blog not started (listener /run/blog.sock: in use)", incomplete: true }
    ]
    await fakeSoad(Path.join(dir, "apps.sock"), () => answers.shift()!)
    const reload: ControlCommand = { verb: "reload", which: {} }
    expect(await run(dir, reload)).toEqual({ code: 0, stdout: "reloaded /etc/soad/apps.toml: blog added, wiki unchanged\n", stderr: "" })
    expect(await run(dir, reload)).toEqual({
      code: 1,
      stdout: "",
      stderr: "soad: apps.toml: line 3: bad key\nsoad: apps.toml: services.x.listen: missing\nsoad: the reload failed: soad keeps running the config it had\n"
    })
    expect(await run(dir, reload)).toEqual({
      code: 1,
      stdout: "reloaded /etc/soad/apps.toml: blog not started (listener /run/blog.sock: in use)\n",
      stderr: "soad: the reload did not apply to every service (see above)\n"
    })
  })
})

describe("interrupted", () => {
  it("a command interrupted while soad has not answered ends quietly with 130", async () => {
    const dir = tempDir()
    let connected = () => {}
    const server = Net.createServer(() => connected()) // accepts, never answers
    await new Promise<void>((resolve) => server.listen(Path.join(dir, "slow.sock"), resolve))
    cleanups.push(() => server.close())
    const interrupt = new AbortController()
    const asked = new Promise<void>((resolve) => (connected = resolve))
    const result = run(dir, { verb: "reload", which: {} }, {}, interrupt.signal)
    await asked
    interrupt.abort()
    expect(await result).toEqual({ code: 130, stdout: "", stderr: "" })
  })
})
