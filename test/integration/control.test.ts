/**
 * The control commands against real soads: found with no flag (each soad's control socket in one directory, a
 * single app's named after its cgroup), several listed by `status` and refused by the other verbs until one is
 * named, `reload` with its summary, `restart`, `start`/`stop`, `logs` of every service, `status` of 1,000
 * services with their socket files' mode and owner, and the light path, which runs with neither Effect nor the
 * command tree.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { helpTexts } from "../../src/cli/helpTexts.js"
import { alive, appCommand, appFixture, bin, eventually, root, soad, soadRun, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()

/** Runs a soad command without blocking the test's loop (the soads' stderr keeps draining meanwhile). */
const cli = (
  args: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  program: string = bin
): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const child = ChildProcess.spawn(process.execPath, [program, ...args], { stdio: ["ignore", "pipe", "pipe"], env, cwd: root })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

/** A directory for soads' control sockets, and the environment that makes soads and clients use it alone. */
const controlDir = (d: string) => {
  const ctl = Path.join(d, "ctl")
  return { ctl, env: { ...process.env, SOAD_CONTROL_DIR: ctl } }
}

/** The control sockets in `ctl`, sorted. */
const sockets = (ctl: string): Array<string> => (Fs.existsSync(ctl) ? Fs.readdirSync(ctl).sort() : [])

describe("finding the running soads", () => {
  it("two single-app soads without --name get their own control sockets; status lists both; wake asks which", async () => {
    // Fault: both made $XDG_RUNTIME_DIR/soad.sock: the second ran without a control socket, and only the first
    // could be asked. Promise: each is named after its cgroup (the app and its first listener), the same at each
    // start, and found with no flag.
    const d = dir()
    const { ctl, env } = controlDir(d)
    const first = soad(["-s", Path.join(d, "a.sock"), "--", "node", appFixture], { env })
    const second = soad(["-s", Path.join(d, "b.sock"), "--", "node", appFixture], { env })
    await eventually(() => sockets(ctl).length === 2, 15_000, "two control sockets")
    const names = sockets(ctl)
    expect(names).toEqual([expect.stringMatching(/^node-[0-9a-f]{8}\.sock$/), expect.stringMatching(/^node-[0-9a-f]{8}\.sock$/)])
    expect(first.output() + second.output()).not.toMatch(/no control socket/)

    const status = await cli(["status"], env)
    expect(status.code).toBe(0)
    const blocks = status.stdout.trimEnd().split("\n\n")
    expect(blocks).toHaveLength(2)
    for (const block of blocks) expect(block).toMatch(/^node-[0-9a-f]{8}: 1 service: 1 stopped; .*\nSERVICE\s.*\nnode\s+stopped\s.*[ab]\.sock\s/)

    const asked = await cli(["wake", "node"], env)
    expect(asked.code).toBe(2)
    expect(asked.stderr).toMatch(/^soad: 2 soads are running \(node-[0-9a-f]{8}, node-[0-9a-f]{8}\): say which with --name, e.g\. soad wake node --name node-/)
    const instance = names[0]!.slice(0, -".sock".length)
    expect((await cli(["wake", "node", "--name", instance], env)).stdout).toBe("node: starting\n")

    // The same name at the next start: a stable name, not a pid.
    const socketOfFirst = names.find((name) => blocks.some((block) => block.startsWith(name.slice(0, -5)) && block.includes("a.sock")))!
    first.process.kill("SIGTERM")
    await first.exited
    expect(sockets(ctl)).toEqual(names.filter((name) => name !== socketOfFirst))
    soad(["-s", Path.join(d, "a.sock"), "--", "node", appFixture], { env })
    await eventually(() => sockets(ctl).length === 2, 15_000, "the control socket again")
    expect(sockets(ctl)).toEqual(names)
  })

  it("with one soad running, every verb finds it with no flag, even one run with -c FILE", async () => {
    // Fault: a soad run with -c FILE needed -c FILE on every status.
    const d = dir()
    const { env } = controlDir(d)
    const config = writeConfig(d, `[services.blog]\nlisten = ["${d}/blog.sock"]\ncommand = [${appCommand}]\n`)
    soad(["-c", config], { env })
    await eventually(() => sockets(controlDir(d).ctl).length === 1, 15_000, "the control socket")
    expect((await cli(["status"], env)).stdout).toMatch(/^1 service: 1 stopped; .*\nSERVICE\s.*\nblog\s+stopped\s/)
    expect((await cli(["start", "blog"], env)).stdout).toBe("blog: starting\n")
    expect((await cli(["stop", "blog"], env)).stdout).toMatch(/^blog: (stopped|not running)\n$/)
  })

  it("soad sleep 30 (an app's command without --) is refused with how to run it, and sends nothing that acts", async () => {
    const d = dir()
    const { env } = controlDir(d)
    const s = soad(["--name", "web", "-s", Path.join(d, "a.sock"), "--", "node", appFixture], { env })
    await eventually(() => sockets(controlDir(d).ctl).length === 1, 15_000, "the control socket")
    const bare = await cli(["sleep", "30"], env)
    expect(bare).toEqual({
      code: 1,
      stdout: "",
      stderr: "soad: no service '30'; the services are web; to run 'sleep 30' as the app, give it after --, e.g. soad -s PATH -- sleep 30\n"
    })
    const more = await cli(["sleep", "30", "&&", "echo"], env)
    expect(more.code).toBe(2)
    expect(more.stderr).toBe(
      "soad: 'sleep 30 && echo' is not a soad command (soad sleep takes one NAME): to run 'sleep 30 && echo' as the app, " +
        "give it after --, e.g. soad -s PATH -- sleep 30 && echo (see soad --help)\n"
    )
    expect(s.output()).not.toMatch(/sleep /)
  })
})

describe("soad reload", () => {
  it("reloads the file, waits for it and prints its summary; a bad file: its errors and exit 1", async () => {
    const d = dir()
    const { env } = controlDir(d)
    const service = (name: string) => `[services.${name}]\nlisten = ["${d}/${name}.sock"]\ncommand = [${appCommand}]\n`
    const config = writeConfig(d, service("a"))
    const s = soad(["-c", config], { env })
    await eventually(() => sockets(controlDir(d).ctl).length === 1, 15_000, "the control socket")
    expect(await cli(["reload"], env)).toEqual({ code: 0, stdout: `reloaded ${config}: a unchanged\n`, stderr: "" })
    Fs.writeFileSync(config, service("a") + service("b"))
    expect(await cli(["reload"], env)).toEqual({ code: 0, stdout: `reloaded ${config}: b added, a unchanged\n`, stderr: "" })
    await s.waitFor(/listening on .*b\.sock/)
    Fs.writeFileSync(config, service("a") + "[services.c]\nlisten = 5\n")
    const refused = await cli(["reload"], env)
    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe("")
    const lines = refused.stderr.trimEnd().split("\n")
    expect(lines.length).toBeGreaterThanOrEqual(2)
    expect(lines.slice(0, -1).every((line) => line.startsWith(`soad: ${config}`) || line.startsWith("soad: services.c"))).toBe(true)
    expect(lines.at(-1)).toBe("soad: the reload failed: soad keeps running the config it had")
    await s.waitFor(/reload_failed|the reload failed/)
    // each request had a reload of its own, said as SIGHUP's are
    expect(s.count(/reloading .* \(SIGHUP or soad reload\)/)).toBe(3)
  })

  it("a single app's soad has nothing to reload, and says so", async () => {
    const d = dir()
    const { env } = controlDir(d)
    soad(["-s", Path.join(d, "a.sock"), "--", "node", appFixture], { env })
    await eventually(() => sockets(controlDir(d).ctl).length === 1, 15_000, "the control socket")
    expect(await cli(["reload"], env)).toEqual({
      code: 1,
      stdout: "",
      stderr: "soad: this soad runs one app from its flags, not a config file (-c FILE): there is nothing to reload\n"
    })
  })
})

describe("soad restart", () => {
  it("stops the app and starts it again, and says both", async () => {
    const d = dir()
    const control = Path.join(d, "control.sock")
    const s = soad(["-s", Path.join(d, "a.sock"), "-t", "600", "--control", control, "--", "node", appFixture])
    await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
    expect((await cli(["restart", "node", "--control", control], process.env)).stdout).toBe("node: not running, then starting\n")
    await s.waitFor(/app started \(pid \d+, on request\)/)
    const pid = () => (JSON.parse(soadRun(["status", "--json", "--control", control]).stdout) as Array<{ pid: number | null }>)[0]!.pid
    await eventually(() => pid() !== null, 15_000, "the app's pid")
    const before = pid()!
    expect((await cli(["restart", "node", "--control", control], process.env)).stdout).toBe("node: stopped, then starting\n")
    expect(alive(before)).toBe(false)
    await eventually(() => pid() !== null && pid() !== before, 15_000, "the app started again")
    expect(s.count(/restart node: /)).toBe(2)
  })
})

describe("soad logs of every service", () => {
  it("prints every service's lines in time order, each after its [name]; -n the latest; -f follows them all", async () => {
    const d = dir()
    const { env } = controlDir(d)
    /** An app that writes `first` at once, then `then` when the file `trigger` appears; it never accepts. */
    const app = (name: string, first: string, then: string, trigger: string) => {
      const path = Path.join(d, `${name}.mjs`)
      Fs.writeFileSync(path, `import * as Fs from "node:fs"
console.log(${JSON.stringify(first)})
const timer = setInterval(() => {
  if (!Fs.existsSync(${JSON.stringify(trigger)})) return
  clearInterval(timer)
  console.log(${JSON.stringify(then)})
  setInterval(() => {}, 1000)
}, 50)
`)
      return `[services.${name}]\nlisten = ["${d}/${name}.sock"]\ncommand = [${JSON.stringify(process.execPath)}, ${JSON.stringify(path)}]\ntime-until-stop = 600\n`
    }
    const config = writeConfig(d, app("alpha", "a1", "a2", Path.join(d, "go-a")) + app("beta", "b1", "b2", Path.join(d, "go-b")))
    const s = soad(["-c", config], { env })
    await eventually(() => sockets(controlDir(d).ctl).length === 1, 15_000, "the control socket")
    await cli(["wake", "alpha"], env)
    await s.waitFor(/^\[alpha\] a1$/, 15_000)
    await cli(["wake", "beta"], env)
    await s.waitFor(/^\[beta\] b1$/, 15_000)
    Fs.writeFileSync(Path.join(d, "go-a"), "")
    await s.waitFor(/^\[alpha\] a2$/, 15_000)

    expect(await cli(["logs"], env)).toEqual({ code: 0, stdout: "[alpha] a1\n[beta] b1\n[alpha] a2\n", stderr: "" })
    expect((await cli(["logs", "-n", "2"], env)).stdout).toBe("[beta] b1\n[alpha] a2\n")
    expect((await cli(["logs", "alpha"], env)).stdout).toBe("a1\na2\n") // one service: its lines as they are

    const follower = ChildProcess.spawn(process.execPath, [bin, "logs", "-f", "-n", "1"], { stdio: ["ignore", "pipe", "pipe"], env })
    let followed = ""
    follower.stdout.setEncoding("utf8").on("data", (chunk: string) => (followed += chunk))
    try {
      await eventually(() => followed === "[alpha] a2\n", 15_000, "the latest line")
      Fs.writeFileSync(Path.join(d, "go-b"), "")
      await eventually(() => followed === "[alpha] a2\n[beta] b2\n", 15_000, "beta's new line")
    } finally {
      follower.kill("SIGINT")
    }
    expect(await new Promise((resolve) => follower.on("close", resolve))).toBe(0)
  })
})

describe("soad status of 1,000 services", () => {
  it("a summary line first, the stopped folded away; a pattern or --all for the rest; the socket files as they are", async () => {
    // Fault: 1,000 rows, no summary; and the mode of a socket shown nowhere but in the config. Promise: the summary,
    // the rows that matter, and each asked-for service's socket file as it is now (mode, owner, gone).
    const d = dir()
    const { env } = controlDir(d)
    let toml = `[defaults]\ncommand = [${appCommand}]\n`
    for (let i = 0; i < 1000; i++) toml += `[services.s${i}]\nlisten = ["${d}/s${i}.sock"]\n${i === 7 ? `socket-mode = "0660"\n` : ""}`
    const s = soad(["-c", writeConfig(d, toml), "--log-level", "warn"], { env })
    await eventually(() => sockets(controlDir(d).ctl).length === 1, 60_000, "the control socket")

    const status = await cli(["status"], env)
    expect(status.code).toBe(0)
    const lines = status.stdout.trimEnd().split("\n")
    expect(lines[0]).toBe("1000 services: 1000 stopped; 0M in use, 0 MB·h saved")
    expect(lines.at(-1)).toBe("(1000 stopped services not shown: soad status --all shows every one, soad status 'NAME*' those that match)")
    expect(lines).toHaveLength(4)

    expect((await cli(["status", "--all"], env)).stdout.trimEnd().split("\n")).toHaveLength(1 + 1 + 1000 + 1)
    const json = JSON.parse((await cli(["status", "--json"], env)).stdout) as Array<{ name: string; sockets: Array<Record<string, unknown>> }>
    expect(json).toHaveLength(1000)
    const me = process.getuid!()
    expect(json[7]!.sockets).toEqual([expect.objectContaining({ path: `${d}/s7.sock`, mode: "0660", uid: me })])

    Fs.chmodSync(Path.join(d, "s8.sock"), 0o600) // by hand: status shows the file as it is, not as configured
    Fs.rmSync(Path.join(d, "s9.sock"))
    const some = await cli(["status", "s7", "s8", "s9", "s1?"], env)
    expect(some.code).toBe(0)
    const rows = some.stdout.split("\n").filter((line) => /^s\d+\s/.test(line)).map((line) => line.split(/\s+/)[0])
    expect(rows).toEqual(["s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19"])
    const owner = (me === 0 ? "root" : String(me)).replace(/[.*]/g, "\\$&")
    expect(some.stdout).toMatch(/^SOCKET FILE\s+SERVICE\s+MODE\s+OWNER\s+GROUP$/m)
    expect(some.stdout).toMatch(new RegExp(`^${d}/s7\\.sock\\s+s7\\s+0660\\s+${owner}\\s`, "m"))
    expect(some.stdout).toMatch(new RegExp(`^${d}/s8\\.sock\\s+s8\\s+0600\\s+${owner}\\s`, "m"))
    expect(some.stdout).toMatch(new RegExp(`^${d}/s10\\.sock\\s+s10\\s+0666\\s+${owner}\\s`, "m"))
    expect(some.stdout).toMatch(new RegExp(`^${d}/s9\\.sock\\s+s9\\s+gone: no file at this path$`, "m"))
    expect(s.output()).not.toMatch(/ERROR/)
  }, 120_000)
})

describe("the light path", () => {
  it("runs help, --version and the control commands with neither Effect nor the command tree", async () => {
    // The full command tree is a file of its own (dist/program.cjs): without it, the light path (bin.cjs and the
    // texts beside it, help.json) still runs everything it takes, and only what it leaves to the tree (soad check)
    // fails.
    const d = dir()
    const light = Path.join(d, "light")
    Fs.mkdirSync(light)
    Fs.copyFileSync(bin, Path.join(light, "bin.cjs"))
    Fs.copyFileSync(Path.join(Path.dirname(bin), "help.json"), Path.join(light, "help.json"))
    const program = Path.join(light, "bin.cjs")
    const { env } = controlDir(d)
    const control = Path.join(d, "control.sock")
    soad(["-s", Path.join(d, "a.sock"), "--control", control, "--", "node", appFixture], { env })
    await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
    expect(await cli(["--version"], env, program)).toEqual({ code: 0, stdout: `${soadRun(["--version"]).stdout}`, stderr: "" })
    expect((await cli(["--help"], env, program)).stdout).toContain("--time-until-stop")
    expect((await cli(["status", "--control", control], env, program)).stdout).toMatch(/^node\s+stopped\s/m)
    expect((await cli(["wake", "node", "--control", control], env, program)).stdout).toBe("node: starting\n")
    const check = await cli(["check", Path.join(d, "x.toml")], env, program)
    expect(check.code).not.toBe(0)
    expect(check.stderr).toMatch(/program\.cjs/) // it needed the tree
  })

  it("without the texts beside bin.cjs (help.json), help and --version come from the command tree, the same", async () => {
    const d = dir()
    const dist = Path.join(d, "dist")
    Fs.mkdirSync(dist)
    for (const file of ["bin.cjs", "program.cjs"]) Fs.copyFileSync(Path.join(Path.dirname(bin), file), Path.join(dist, file))
    Fs.mkdirSync(Path.join(d, "src"))
    Fs.symlinkSync(Path.join(root, "src", "native"), Path.join(d, "src", "native"))
    const program = Path.join(dist, "bin.cjs")
    for (const args of [["--help"], ["status", "--help"], ["--version"]]) {
      const tree = await cli(args, { ...process.env, SOAD_CODE_CACHE: "0" }, program)
      expect(tree).toEqual({ code: 0, stdout: soadRun(args).stdout, stderr: "" })
    }
  })

  it("prints the help the command tree renders, for soad and every subcommand it knows", async () => {
    // The texts are rendered from the tree at build time; a build from other sources, or a change to how the
    // light path prints them, would show here. Plain, as on a pipe.
    // eslint-disable-next-line no-control-regex
    const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "")
    const texts = await helpTexts()
    expect(Object.keys(texts)).toContain("help status")
    for (const [key, text] of Object.entries(texts)) {
      const args = key === "version" ? ["--version"] : [...key.split(" ").slice(1), "--help"]
      expect(soadRun(args).stdout, key).toBe(`${plain(text)}\n`)
    }
  })

  it("gives the same errors and exit codes as the command tree for bad input", () => {
    expect(soadRun(["wake"])).toMatchObject({ code: 2, stderr: "soad: Missing argument <NAME> (see soad --help)\n" })
    expect(soadRun(["logs", "x", "-n", "abc"])).toMatchObject({
      code: 2,
      stderr: "soad: -n: 'abc' is not a whole number, 0 or more (see soad --help)\n"
    })
    expect(soadRun(["status", "--jsn"])).toMatchObject({ code: 2, stderr: "soad: unknown option '--jsn' for soad status (see soad --help)\n" })
    expect(soadRun(["--name", "../x", "status"])).toMatchObject({ code: 2 })
    expect(soadRun(["frobnicate"])).toMatchObject({ code: 2, stderr: "soad: no socket: give one with -s PATH or -l ADDR (see soad --help)\n" })
  })
})
