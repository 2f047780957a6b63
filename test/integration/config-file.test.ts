/**
 * Many apps in one soad, from a config file: check, independence, reload, the RAM budget, running as a user.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, appFixture, describeAsRoot, eventually, get, sleep, soad, soadRun, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()

const node = JSON.stringify(process.execPath)
const app = JSON.stringify(appFixture)

const write = writeConfig

describe("soad check", () => {
  it("prints what would run and exits 0", () => {
    const d = dir()
    const path = write(d, `
max-running = 2
min-available-memory = "200MB"
[defaults]
time-until-stop = 300
[services.blog]
listen = ["${d}/blog.sock", "admin=127.0.0.1:0"]
command = [${node}, ${app}, "--port", "fd"]
cwd = "/srv"
env = { DJANGO_SETTINGS_MODULE = "blog.prod" }
`)
    const result = soadRun(["check", path])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`${path}: 1 service; at most 2 running, keep 200 MB available`)
    expect(result.stdout).toContain("[blog]")
    expect(result.stdout).toContain(`listen   ${d}/blog.sock, admin=127.0.0.1:0`)
    expect(result.stdout).toContain("stop     after 5m idle with SIGTERM")
    expect(result.stdout).toContain("sockets  mode 0666, owner soad's user, group soad's group")
    expect(result.stdout).toContain(`${path}: OK`)
  })

  it("shows each service's socket mode and owner as soad will make them", () => {
    const d = dir()
    const path = write(d, `
[services.a]
listen = ["${d}/a.sock"]
command = [${node}, ${app}]
socket-mode = "0660"
socket-user = 0
socket-group = 0
`)
    const result = soadRun(["check", path])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("sockets  mode 0660, owner uid 0, group gid 0")
  })

  it("lists every error, each naming the file, the service and the field, and exits 1", () => {
    const d = dir()
    const path = write(d, `
max-running = 0
min-available-memory = "lots"
[defaults]
time-untill-stop = 5
[services.a]
command = "node app.js"
time-until-stop = "soon"
[services.b]
listen = ["nonsense"]
command = ["x"]
shutdown-signal = "FOO"
socket-mode = "999"
[services.c]
command = ["y"]
user = "no-such-user-here"
`)
    const result = soadRun(["check", path])
    expect(result.code).toBe(1)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toEqual([
      `soad: ${path}: max-running: expected a whole number, 1 or more, found 0`,
      `soad: ${path}: defaults.time-untill-stop: unknown key; did you mean time-until-stop?`,
      `soad: ${path}: services.a.command: expected the program and its arguments as a list, e.g. ["gunicorn", "app:app"], found "node app.js"`,
      `soad: ${path}: services.a.time-until-stop: expected a positive number of seconds or a duration such as 90s, 5m, 1h30m, 250ms, from 0.001 (1 ms) to 2147483.647 (about 24.8 days), found "soon"`,
      `soad: ${path}: services.b.listen[0]: 'nonsense' is not an address: use /path, unix:PATH, @name, HOST:PORT, [IPV6]:PORT, :PORT or fd:N`,
      `soad: ${path}: services.b.shutdown-signal: unknown signal 'FOO': use a name such as TERM, INT, QUIT, HUP or a number such as 15`,
      `soad: ${path}: services.b.socket-mode: expected an octal mode such as "0660" or 0o660, found "999"`,
      `soad: ${path}: services.c.listen: expected at least one listener, e.g. listen = ["/run/app.sock"], found none`,
      `soad: ${path}: services.c.user: no user "no-such-user-here"`
    ])
  })

  it("durations take units as the flags do: \"90s\", \"1h30m\", \"250ms\" as well as seconds", () => {
    const d = dir()
    const path = write(d, `
min-warm = "2m"
[defaults]
stop-timeout = "250ms"
[services.a]
listen = ["${d}/a.sock"]
command = [${node}, ${app}]
time-until-stop = "90s"
[services.b]
listen = ["${d}/b.sock"]
command = [${node}, ${app}]
time-until-stop = "1h30m"
`)
    const result = soadRun(["check", path])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("stop     after 1m 30s idle with SIGTERM, SIGKILL after 250ms")
    expect(result.stdout).toContain("stop     after 1h 30m idle with SIGTERM, SIGKILL after 250ms")
  })

  it("a file that is not TOML, and one that does not exist", () => {
    const d = dir()
    const path = write(d, "x = [\n")
    const broken = soadRun(["check", path])
    expect(broken.code).toBe(1)
    expect(broken.stderr.trim()).toMatch(new RegExp(`^soad: ${path}: not valid TOML: line 2, column 1: `))
    const missing = soadRun(["check", Path.join(d, "nope.toml")])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/nope\.toml: cannot read it: ENOENT/)
  })

  it("soad -c with an invalid file refuses to start, with every error", () => {
    const d = dir()
    const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\n[services.b]\ncommand = ["x"]\n`)
    const result = soadRun(["-c", path])
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split("\n")).toHaveLength(2)
    expect(Fs.existsSync(Path.join(d, "a.sock"))).toBe(false)
  })

  it("-c with -s or a command is a usage error", () => {
    const d = dir()
    const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = ["x"]\n`)
    const result = soadRun(["-c", path, "--", "app"])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/-c takes the services from the file: give no a command with it/)
  })
})

describe("soad -c", () => {
  it("runs each service on its own: independent idle stops, one crashing while the other serves", async () => {
    const d = dir()
    const path = write(d, `
[services.quick]
listen = ["${d}/quick.sock"]
command = [${node}, ${app}]
time-until-stop = 0.5
[services.slow]
listen = ["${d}/slow.sock"]
command = [${node}, ${app}]
time-until-stop = 60
[services.broken]
listen = ["${d}/broken.sock"]
command = [${node}, ${app}, "--exit-code", "1"]
`)
    const s = soad(["-c", path])
    await s.waitFor(/listening on .*broken\.sock/)
    const quick = await get({ socketPath: Path.join(d, "quick.sock") })
    const slow = await get({ socketPath: Path.join(d, "slow.sock") })
    const broken = get({ socketPath: Path.join(d, "broken.sock") }, "/", 3000).catch(() => "no answer")
    await s.waitFor(/\[quick\] stopping the app \(pid \d+, idle for/, 15_000)
    await s.waitFor(/\[broken\] app exited by itself \(code 1/)
    await s.waitFor(/\[broken\] failing: next try in/)
    await eventually(() => !alive(quick.pid as number), 15_000, "the quick app to stop")
    expect(alive(slow.pid as number)).toBe(true)
    for (let i = 0; i < 5; i++) expect((await get({ socketPath: Path.join(d, "slow.sock") })).pid).toBe(slow.pid)
    expect(await broken).toBe("no answer")
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    expect(alive(slow.pid as number)).toBe(false)
    expect(Fs.readdirSync(d).filter((f) => f.endsWith(".sock"))).toEqual([])
  })

  it("SIGHUP reloads: adds, removes and restarts services; an unchanged listener stays open; nothing is lost", async () => {
    const d = dir()
    const service = (name: string, extra = "") =>
      `[services.${name}]\nlisten = ["${d}/${name}.sock"]\ncommand = [${node}, ${app}]\ntime-until-stop = 60\n${extra}\n`
    const path = write(d, service("steady") + service("changing", `env = { SOAD_TEST = "v1" }`) + service("leaving"))
    const s = soad(["-c", path])
    await s.waitFor(/listening on .*leaving\.sock/)
    const steady = await get({ socketPath: Path.join(d, "steady.sock") })
    const changing = await get({ socketPath: Path.join(d, "changing.sock") })
    expect((changing.env as { SOAD_TEST: string }).SOAD_TEST).toBe("v1")
    const leaving = await get({ socketPath: Path.join(d, "leaving.sock") })

    write(d, service("steady") + service("changing", `env = { SOAD_TEST = "v2" }`) + service("arriving"))
    // A request in flight on the unchanged service, and requests to the changing one all through the reload.
    const inFlight = get({ socketPath: Path.join(d, "steady.sock") }, "/?delay=1500")
    let stop = false
    const during: Array<Promise<Record<string, unknown>>> = []
    const hammer = (async () => {
      while (!stop) {
        during.push(get({ socketPath: Path.join(d, "changing.sock") }))
        await sleep(20)
      }
    })()
    await sleep(100)
    s.process.kill("SIGHUP")
    // The reload says what it did, service by service; the stops it makes say why, not that soad shuts down.
    await s.waitFor(/reloaded .*: changing restarted \(env changed\), arriving added, leaving removed, steady unchanged$/)
    expect(s.output()).toMatch(/\[leaving\] stopping the app \(pid \d+\) for the reload \(removed from the config\) with SIGTERM/)
    expect(s.output()).toMatch(/\[changing\] stopping the app \(pid \d+\) for the reload \(env changed\) with SIGTERM/)
    expect(s.output()).not.toMatch(/shutting down/)
    await sleep(300)
    stop = true
    await hammer
    const replies = await Promise.all(during)
    expect(replies.length).toBeGreaterThan(5)
    expect(replies.at(-1)!.env).toMatchObject({ SOAD_TEST: "v2" }) // the restarted app has the new config
    expect(replies.at(-1)!.pid).not.toBe(changing.pid)
    expect((await inFlight).pid).toBe(steady.pid) // the unchanged service was not touched
    expect((await get({ socketPath: Path.join(d, "steady.sock") })).pid).toBe(steady.pid)
    expect(alive(leaving.pid as number)).toBe(false)
    expect(Fs.existsSync(Path.join(d, "leaving.sock"))).toBe(false)
    expect((await get({ socketPath: Path.join(d, "arriving.sock") })).name).toBe("soad")
    expect(s.count(/listening on .*changing\.sock/)).toBe(1) // never closed and opened again
  })

  it("a reload with an invalid file keeps the running config and logs why", async () => {
    const d = dir()
    const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = [${node}, ${app}]\n`)
    const s = soad(["-c", path])
    await s.waitFor(/listening on/)
    const before = await get({ socketPath: Path.join(d, "a.sock") })
    write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = "not a list"\n`)
    s.process.kill("SIGHUP")
    await s.waitFor(/the reload failed: soad keeps running the config it had/)
    expect(s.output()).toMatch(/ERROR .*services\.a\.command: expected the program and its arguments as a list/)
    expect((await get({ socketPath: Path.join(d, "a.sock") })).pid).toBe(before.pid)
  })

  it("max-running: starting another app first stops the least recently active one", async () => {
    const d = dir()
    const service = (name: string) => `[services.${name}]\nlisten = ["${d}/${name}.sock"]\ncommand = [${node}, ${app}]\n`
    const path = write(d, `max-running = 2\nmin-warm = 0.2\n` + service("a") + service("b") + service("c"))
    const s = soad(["-c", path])
    await s.waitFor(/listening on .*c\.sock/)
    const a = await get({ socketPath: Path.join(d, "a.sock") })
    const b = await get({ socketPath: Path.join(d, "b.sock") })
    await sleep(300)
    await get({ socketPath: Path.join(d, "a.sock") }) // a is active again, b is not
    const c = await get({ socketPath: Path.join(d, "c.sock") })
    await s.waitFor(/\[b\] stopping the app \(pid \d+\) to make room for c: max-running is 2; it was the least recently active/)
    expect(alive(b.pid as number)).toBe(false)
    expect(alive(a.pid as number)).toBe(true)
    expect(alive(c.pid as number)).toBe(true)
  })

  it("user and group: the app runs as that user (soad as root)", async () => {
    const d = dir()
    const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = [${node}, ${app}]\nuser = "nobody"\n`)
    const s = soad(["-c", path])
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath: Path.join(d, "a.sock") })
    expect(reply).toMatchObject({ uid: 65534, gid: 65534 })
    await eventually(() => alive(reply.pid as number), 15_000, "the app")
  })
})

describe("soad check, on this machine", () => {
  it("a missing or non-executable command, a missing cwd and a missing socket directory are errors naming the path", () => {
    // Fault: check said OK, and the start failed later (ENOENT on spawn, a socket that cannot be created).
    // Promise: each one is an error (it would certainly fail at start), naming the service, the key and the path.
    const d = dir()
    const script = Path.join(d, "app.sh")
    Fs.writeFileSync(script, "#!/bin/sh\n", { mode: 0o644 }) // not executable
    const path = write(d, `
[services.a]
listen = ["${d}/a.sock"]
command = ["no-such-command-here", "x"]
[services.b]
listen = ["${d}/nodir/b.sock"]
command = [${JSON.stringify(script)}]
cwd = "${d}/gone"
[services.c]
listen = ["${d}/c.sock"]
command = ["${d}/missing-program"]
[services.d]
listen = ["${d}/d.sock"]
command = ["sh", "-c", "exit 0"]
`)
    const result = soadRun(["check", path])
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split("\n")).toEqual([
      `soad: ${path}: services.a.command: no-such-command-here is not on the app's PATH (${process.env.PATH}): install it, or give its absolute path`,
      `soad: ${path}: services.b.command: ${script} is not executable by soad's user`,
      `soad: ${path}: services.b.cwd: ${d}/gone does not exist`,
      `soad: ${path}: services.b.listen: ${d}/nodir/b.sock: the directory ${d}/nodir does not exist: create it first`,
      `soad: ${path}: services.c.command: ${d}/missing-program does not exist`
    ])
  })

  it("a relative command without a cwd is a warning: it depends on where soad starts", () => {
    const d = dir()
    const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = ["./bin/app"]\n`)
    const result = soadRun(["check", path])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(
      `warning: ${path}: services.a.command: ./bin/app is relative to the directory soad starts in: give an absolute path or a cwd\n${path}: OK`
    )
  })
})

describeAsRoot("soad check, as root, for the app's user", () => {
  it("a command only root may run is an error for an app that runs as nobody", () => {
    const d = dir()
    const script = Path.join(d, "app.sh")
    Fs.writeFileSync(script, "#!/bin/sh\n", { mode: 0o700 }) // root's own: root may run it, nobody may not
    const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = [${JSON.stringify(script)}]\nuser = "nobody"\n`)
    const result = soadRun(["check", path])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(`soad: ${path}: services.a.command: ${script} is not executable by user nobody`)
  })
})
