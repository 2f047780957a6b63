/**
 * soad under systemd: the notifications around a reload and the STATUS= line, priority prefixes when stderr is the
 * journal, a control socket per instance, and the unit files the README shows (checked by systemd-analyze verify).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { appCommand, appFixture, eventually, freePort, get, root, soad, soadRun, tempDirs } from "../harness.js"

const dir = tempDirs()
const children: Array<ChildProcess.ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

/**
 * A python3 datagram listener standing in for systemd's NOTIFY_SOCKET (Node cannot receive UNIX datagrams); each
 * datagram is one line of `received`, JSON [text, CLOCK_MONOTONIC µs when it arrived], so a multi-line datagram
 * stays one entry.
 */
const notifyListener = async (d: string): Promise<{
  readonly socket: string
  readonly datagrams: () => Array<string>
  readonly arrivals: () => Array<readonly [string, bigint]>
}> => {
  const socket = Path.join(d, "notify.sock")
  const received = Path.join(d, "received")
  const listener = ChildProcess.spawn("python3", [
    "-c",
    `import json,socket,sys,time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], "w").close()
while True:
    data = s.recv(4096)
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    with open(sys.argv[2], "a") as f:
        f.write(json.dumps([data.decode(), str(now)]) + "\\n")`,
    socket,
    received
  ], { stdio: "ignore" })
  children.push(listener)
  await eventually(() => Fs.existsSync(received), 15_000, "the notify listener")
  const arrivals = () =>
    Fs.readFileSync(received, "utf8").split("\n").filter((line) => line !== "").map((line) => {
      const [text, at] = JSON.parse(line) as [string, string]
      return [text, BigInt(at)] as const
    })
  return { socket, arrivals, datagrams: () => arrivals().map(([text]) => text) }
}

/** A config file of services named `names`, each on `d/NAME.sock`, running the test app. */
const services = (d: string, file: string, names: ReadonlyArray<string>): string => {
  const path = Path.join(d, file)
  Fs.writeFileSync(path, names.map((name) => `[services.${name}]\nlisten = ["${d}/${name}.sock"]\ncommand = [${appCommand}]\n`).join(""))
  return path
}

/** CLOCK_MONOTONIC in µs, as this process reads it (the same clock soad reads). */
const monotonicMicros = (): bigint => process.hrtime.bigint() / 1000n

describe("systemd notify: reload and status", () => {
  it("says RELOADING=1 with MONOTONIC_USEC, then READY=1, around a SIGHUP reload, and keeps STATUS= current", async () => {
    // Promise: systemd (Type=notify-reload) sees each reload from RELOADING=1 to READY=1, with the reload's start
    // on CLOCK_MONOTONIC, and `systemctl status` shows how many apps run, updated as they start and stop.
    const d = dir()
    const notify = await notifyListener(d)
    const config = services(d, "apps.toml", ["a", "b"])
    const s = soad(["-c", config, "--control", Path.join(d, "control.sock")], {
      env: { ...process.env, NOTIFY_SOCKET: notify.socket }
    })
    await eventually(() => notify.datagrams().includes("STATUS=0 of 2 apps running"), 15_000, "the first STATUS=")
    expect(notify.datagrams()).toEqual(["READY=1", "STATUS=0 of 2 apps running"])

    await get({ socketPath: Path.join(d, "a.sock") })
    await eventually(() => notify.datagrams().includes("STATUS=1 of 2 apps running"), 15_000, "STATUS=1 of 2")
    expect(soadRun(["sleep", "a", "--control", Path.join(d, "control.sock")]).stdout.trim()).toBe("a: stopped")
    await eventually(() => notify.datagrams().filter((m) => m === "STATUS=0 of 2 apps running").length === 2, 15_000, "STATUS=0 of 2 again")

    // A reload that adds a service: RELOADING=1 at the time of the reload, READY=1 once it is applied.
    services(d, "apps.toml", ["a", "b", "c"])
    const before = monotonicMicros()
    s.process.kill("SIGHUP")
    await eventually(() => notify.datagrams().includes("STATUS=0 of 3 apps running"), 15_000, "STATUS=0 of 3")
    await eventually(() => notify.datagrams().filter((m) => m === "READY=1").length === 2, 15_000, "READY=1 after the reload")
    const after = monotonicMicros()
    const messages = notify.datagrams()
    const reloading = messages.findIndex((m) => m.startsWith("RELOADING=1"))
    expect(reloading).toBeGreaterThan(0)
    const fields = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(messages[reloading]!)
    expect(fields).not.toBeNull()
    // CLOCK_MONOTONIC, as systemd reads it: after the signal was sent, before the datagram arrived (python's clock)
    const usec = BigInt(fields![1]!)
    expect(usec >= before && usec <= after).toBe(true)
    expect(usec <= notify.arrivals()[reloading]![1]).toBe(true)
    expect(messages.lastIndexOf("READY=1")).toBeGreaterThan(reloading)

    // A reload that fails still ends with READY=1: soad keeps running the config it had.
    Fs.writeFileSync(config, "[services.a\n")
    s.process.kill("SIGHUP")
    await s.waitFor(/the reload failed/)
    await eventually(() => notify.datagrams().filter((m) => m === "READY=1").length === 3, 15_000, "READY=1 after a failed reload")
    expect(notify.datagrams().filter((m) => m.startsWith("RELOADING=1"))).toHaveLength(2)

    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    await eventually(() => notify.datagrams().includes("STOPPING=1"), 15_000, "STOPPING=1")
  })
})

describe("journald priority prefixes", () => {
  /** Runs soad with stderr a file; JOURNAL_STREAM names that file's dev:inode (or `stream` when given). */
  const withStderrFile = async (args: ReadonlyArray<string>, stream?: string) => {
    const d = dir()
    const log = Path.join(d, "stderr")
    const fd = Fs.openSync(log, "w")
    const stat = Fs.fstatSync(fd, { bigint: true })
    const child = ChildProcess.spawn(process.execPath, [Path.join(root, "dist", "bin.cjs"), ...args], {
      stdio: ["ignore", "ignore", fd],
      env: { ...process.env, XDG_RUNTIME_DIR: d, JOURNAL_STREAM: stream ?? `${stat.dev}:${stat.ino}` },
      cwd: d
    })
    Fs.closeSync(fd)
    children.push(child)
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    return { d, child, exited, text: () => Fs.readFileSync(log, "utf8") }
  }

  it("prefixes each line with <3>/<4>/<6>/<7> by level and drops the time when stderr is the journal", async () => {
    // Promise: under systemd, journald files soad's errors as errors and its debug lines as debug (it reads the
    // `<N>` prefix), and no line repeats the time journald records itself.
    const port = await freePort()
    const run = await withStderrFile(["-l", `127.0.0.1:${port}`, "--log-level", "debug", "--", "/nonexistent/app"])
    await eventually(() => /listening on/.test(run.text()), 15_000, "listening")
    // A start that fails (no such command) is an error, and the backoff that follows a warning.
    await get({ host: "127.0.0.1", port }, "/", 2000).catch(() => undefined)
    await eventually(() => /^<4>/m.test(run.text()), 15_000, "a warning")
    run.child.kill("SIGTERM")
    expect(await run.exited).toBe(0)
    const lines = run.text().trim().split("\n")
    for (const line of lines) expect(line).toMatch(/^<[3467]>(ERROR|WARN|INFO|DEBUG) /)
    for (const line of lines) expect(line).not.toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d/)
    expect(lines.find((line) => line.includes("listening on"))).toMatch(/^<6>INFO \[app\] listening on 127\.0\.0\.1:\d+/)
    expect(lines.find((line) => line.includes("cannot start the app"))).toMatch(/^<3>ERROR /)
    expect(lines.find((line) => line.includes("failing: next try in"))).toMatch(/^<4>WARN /)
    expect(lines.some((line) => line.startsWith("<7>DEBUG "))).toBe(true)
  })

  it("prefixes JSON lines too", async () => {
    const run = await withStderrFile(["-l", `127.0.0.1:${await freePort()}`, "--log-format", "json", "--", "node", appFixture])
    await eventually(() => /"event":"listening"/.test(run.text()), 15_000, "listening")
    run.child.kill("SIGTERM")
    expect(await run.exited).toBe(0)
    const first = run.text().split("\n").find((line) => line.includes(`"event":"listening"`))!
    expect(first.startsWith("<6>{")).toBe(true)
    expect(JSON.parse(first.slice(3))).toMatchObject({ level: "info", event: "listening" })
  })

  it("keeps plain lines when JOURNAL_STREAM names another stream (a child that inherited it, its stderr elsewhere)", async () => {
    const run = await withStderrFile(["-l", `127.0.0.1:${await freePort()}`, "--", "node", appFixture], "1:1")
    await eventually(() => /listening on/.test(run.text()), 15_000, "listening")
    run.child.kill("SIGTERM")
    expect(await run.exited).toBe(0)
    for (const line of run.text().trim().split("\n")) expect(line).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z (INFO|WARN|DEBUG|ERROR) /)
  })
})

describe("a control socket per instance", () => {
  it("two soads with different -c files get their own control sockets, and soad status -c FILE asks the right one", async () => {
    // Fault: two soads started with their defaults. Promise: neither answers for the other; each is found from its
    // config file (or its --name) alone.
    const d = dir()
    const env = { ...process.env, XDG_RUNTIME_DIR: d }
    const one = services(d, "one.toml", ["a"])
    const two = services(d, "two.toml", ["b"])
    const first = soad(["-c", one], { env })
    const second = soad(["-c", two], { env })
    await first.waitFor(/listening on/)
    await second.waitFor(/listening on/)
    await eventually(() => Fs.existsSync(Path.join(d, "soad")) && Fs.readdirSync(Path.join(d, "soad")).length === 2, 15_000, "two control sockets")
    const sockets = Fs.readdirSync(Path.join(d, "soad")).sort()
    expect(sockets).toEqual([expect.stringMatching(/^one-[0-9a-f]{8}\.sock$/), expect.stringMatching(/^two-[0-9a-f]{8}\.sock$/)])
    expect(first.output()).not.toMatch(/no control socket/)
    expect(second.output()).not.toMatch(/no control socket/)

    const statusOne = soadRun(["status", "-c", one], { env })
    expect(statusOne.code).toBe(0)
    expect(statusOne.stdout).toMatch(/^a\s+stopped/m)
    expect(statusOne.stdout).not.toMatch(/^b\s/m)
    // the same from another directory, through a relative path, and with -c before the subcommand
    expect(soadRun(["status", "-c", "two.toml"], { env, cwd: d }).stdout).toMatch(/^b\s+stopped/m)
    expect(soadRun(["-c", two, "status"], { env }).stdout).toMatch(/^b\s+stopped/m)
    expect(soadRun(["wake", "b", "-c", two], { env }).stdout.trim()).toBe("b: starting")
    expect(soadRun(["wake", "b", "-c", one], { env }).stderr.trim()).toBe("soad: no service 'b'; the services are a")
    // a file no soad runs: no answer from either
    const three = services(d, "three.toml", ["c"])
    const none = soadRun(["status", "-c", three], { env })
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/no soad is running with control socket .*three-[0-9a-f]{8}\.sock/)
  })

  it("--name NAME gives a soad its control socket, for the run and the subcommands", async () => {
    const d = dir()
    const env = { ...process.env, XDG_RUNTIME_DIR: d }
    const blog = soad(["--name", "blog", "-s", Path.join(d, "blog.sock"), "--", "node", appFixture], { env })
    const wiki = soad(["--name", "wiki", "-s", Path.join(d, "wiki.sock"), "--", "node", appFixture], { env })
    await blog.waitFor(/listening on/)
    await wiki.waitFor(/listening on/)
    await eventually(() => Fs.existsSync(Path.join(d, "soad", "blog.sock")) && Fs.existsSync(Path.join(d, "soad", "wiki.sock")), 15_000, "the control sockets")
    expect(soadRun(["status", "--name", "blog"], { env }).stdout).toMatch(/blog\.sock/)
    expect(soadRun(["--name", "wiki", "status"], { env }).stdout).toMatch(/wiki\.sock/)
    expect(soadRun(["status", "--name", "wiki"], { env }).stdout).not.toMatch(/blog\.sock/)
    expect(Fs.readdirSync(Path.join(d, "soad")).sort()).toEqual(["blog.sock", "wiki.sock"])
  })

  it("refuses a --name that is not a plain file name", () => {
    const result = soadRun(["--name", "../etc", "-s", Path.join(dir(), "a.sock"), "--", "app"])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/--name: '\.\.\/etc'/)
  })
})

describe("the unit files of the README", () => {
  const fixtures = Path.join(root, "test", "fixtures", "systemd")
  const units = Fs.readdirSync(fixtures).sort()

  it("are the text the README shows", () => {
    const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
    expect(units).toEqual(["blog.service", "blog.socket", "soad.service", "soad@.service"])
    const shown = units.filter((unit) => readme.includes("```ini\n" + Fs.readFileSync(Path.join(fixtures, unit), "utf8") + "```\n"))
    expect(shown).toEqual(units)
  })

  it("pass systemd-analyze verify", () => {
    // verify checks that each command exists: soad is this build (written in as the README says for a soad outside
    // /usr/local/bin and /usr/bin; test/e2e/install.test.ts does the same with an installed soad, and verifies the
    // text as written too), and a command missing here is /bin/sh.
    const d = dir()
    for (const unit of units) {
      const text = Fs.readFileSync(Path.join(fixtures, unit), "utf8")
        .replace(/^ExecStart=soad /gm, `ExecStart=${Path.join(root, "dist", "soad")} `)
        .replace(/^(Exec\w+=)(\/\S+)/gm, (line, key: string, command: string) => Fs.existsSync(command) ? line : `${key}/bin/sh`)
      Fs.writeFileSync(Path.join(d, unit), text)
    }
    // an instance of the template, so its specifiers (%i) are expanded
    const result = ChildProcess.spawnSync("systemd-analyze", ["verify", "--man=no", ...["soad.service", "soad@blog.service", "blog.socket", "blog.service"].map((unit) => Path.join(d, unit))], {
      encoding: "utf8",
      cwd: d
    })
    expect(result.error).toBeUndefined()
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
  })
})
