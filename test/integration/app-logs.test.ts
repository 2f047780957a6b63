/**
 * Per-app logs: each app's stdout and stderr reach soad through pipes, so every line is attributed to its service
 * (`[blog] line`, or a JSON event), kept for `soad logs NAME [-n N] [-f]`, and bounded: long lines, binary bytes
 * and an app that floods cannot break soad's log framing, grow its memory or stall the other services.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { appCommand, bin, eventually, get, sleep, soad, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()
const children: Array<ChildProcess.ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

/** Runs a soad subcommand without blocking the test's loop (soad's stderr must keep draining meanwhile). */
const cli = (args: ReadonlyArray<string>): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const child = ChildProcess.spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

/** Writes an app script (run by node) into `d`; its TOML command. */
const script = (d: string, name: string, source: string): string => {
  const path = Path.join(d, `${name}.mjs`)
  Fs.writeFileSync(path, source)
  return `${JSON.stringify(process.execPath)}, ${JSON.stringify(path)}`
}

/** An app that writes `source`'s output, then stays up (it never accepts: soad wake starts it). */
const writer = (source: string) => `${source}\nsetInterval(() => {}, 1000)\n`

/**
 * Starts soad on a config of these services (name → TOML command), with a control socket; waits until it listens.
 * `stderrFile`: soad's stderr is that file (read it: `s.lines` stays empty), so no line waits on a reader.
 */
const start = async (services: Record<string, string>, extra: ReadonlyArray<string> = [], stderrFile?: string) => {
  const d = dir()
  let toml = ""
  for (const [name, command] of Object.entries(services)) {
    toml += `[services.${name}]\nlisten = [${JSON.stringify(Path.join(d, `${name}.sock`))}]\ncommand = [${command}]\n` +
      `time-until-stop = 600\n`
  }
  const control = Path.join(d, "control.sock")
  const s = soad(["-c", writeConfig(d, toml), "--control", control, ...extra], stderrFile === undefined ? {} : { stderrFile })
  if (stderrFile === undefined) await s.waitFor(/control socket|"event":"listening"|listening on/)
  await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
  return { s, d, control, wake: (name: string) => cli(["wake", name, "--control", control]) }
}

describe("an app's output is attributed to its service", () => {
  it("text: each line is written as `[service] line`, stdout and stderr alike", async () => {
    const d0 = dir()
    const { s, wake } = await start({
      alpha: script(d0, "alpha", writer(`console.log("hello from alpha"); console.error("alpha complains")`))
    })
    expect((await wake("alpha")).code).toBe(0)
    await s.waitFor(/^\[alpha\] hello from alpha$/)
    await s.waitFor(/^\[alpha\] alpha complains$/)
  })

  it("json: each line is an event with service, stream, pid and line", async () => {
    const d0 = dir()
    const { s, wake } = await start({
      alpha: script(d0, "alpha", writer(`console.log("to stdout"); console.error("to stderr")`))
    }, ["--log-format", "json"])
    expect((await wake("alpha")).code).toBe(0)
    await s.waitFor(/"line":"to stderr"/)
    await s.waitFor(/"line":"to stdout"/)
    const events = s.lines.map((line) => JSON.parse(line) as Record<string, unknown>)
    const started = events.find((e) => e.event === "started")!
    const out = events.find((e) => e.line === "to stdout")!
    const err = events.find((e) => e.line === "to stderr")!
    expect(out).toMatchObject({ service: "alpha", event: "output", stream: "stdout", pid: started.pid, level: "info" })
    expect(err).toMatchObject({ service: "alpha", event: "output", stream: "stderr", pid: started.pid })
    expect(Number.isNaN(Date.parse(out.time as string))).toBe(false)
  })

  it("two services writing at once: every line is whole and carries its own service's name", async () => {
    const d0 = dir()
    const many = (name: string) =>
      writer(`for (let i = 0; i < 400; i++) process.stdout.write("${name} " + i + " " + "${name[0]}".repeat(50) + "\\n")`)
    const { s, wake } = await start({ alpha: script(d0, "alpha", many("alpha")), beta: script(d0, "beta", many("beta")) })
    await Promise.all([wake("alpha"), wake("beta")])
    await s.waitFor(/^\[alpha\] alpha 399 a{50}$/)
    await s.waitFor(/^\[beta\] beta 399 b{50}$/)
    const alpha = s.lines.filter((line) => line.startsWith("[alpha]"))
    const beta = s.lines.filter((line) => line.startsWith("[beta]"))
    expect(alpha.every((line) => /^\[alpha\] alpha \d+ a{50}$/.test(line))).toBe(true)
    expect(beta.every((line) => /^\[beta\] beta \d+ b{50}$/.test(line))).toBe(true)
    expect(alpha).toHaveLength(400)
    expect(beta).toHaveLength(400)
  })
})

describe("framing", () => {
  // soad's stderr is a file here: through a pipe, pieces beyond what the pipe and soad's bound hold (128 KiB) are
  // dropped and counted whenever the test's reader falls behind the app's burst, as they must be (a slow reader is
  // test/faults/log-writes.test.ts). This test is about the framing, so nothing may be dropped.
  it("a 1 MB line comes out in marked pieces that join into it, and binary bytes become U+FFFD", async () => {
    const d0 = dir()
    const log = Path.join(d0, "soad.log")
    const lines = () => (Fs.existsSync(log) ? Fs.readFileSync(log, "utf8").split("\n") : [])
    const { wake } = await start({
      big: script(
        d0,
        "big",
        writer(
          `process.stdout.write("x".repeat(1 << 20) + "\\n")\n` +
            `process.stdout.write(Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe, 0xc3, 0x0a]))\n` +
            `process.stdout.write("after\\n")`
        )
      )
    }, [], log)
    expect((await wake("big")).code).toBe(0)
    await eventually(() => lines().includes("[big] after"), 10_000, "the app's last line")
    const mine = lines().filter((line) => /^\[big\]\+? /.test(line))
    const pieces = mine.slice(0, mine.findIndex((line) => line.startsWith("[big] bin")))
    expect(pieces.length).toBeGreaterThanOrEqual(64)
    expect(pieces[0]!.startsWith("[big] x")).toBe(true)
    expect(pieces.slice(1).every((line) => line.startsWith("[big]+ "))).toBe(true)
    expect(pieces.every((line) => Buffer.byteLength(line) <= 16 * 1024 + 8)).toBe(true)
    expect(pieces.map((line) => line.slice(line.indexOf(" ") + 1)).join("")).toBe("x".repeat(1 << 20))
    expect(mine).toContain("[big] bin\uFFFD\uFFFD\uFFFD")
  })

  it("in JSON mode every line of soad's stderr is one JSON object, however long or binary the app's lines", async () => {
    const d0 = dir()
    const { s, wake } = await start({
      big: script(
        d0,
        "big",
        writer(
          `process.stdout.write("y".repeat(100000) + "\\n")\n` +
            `process.stdout.write(Buffer.from([0x00, 0x1b, 0x5b, 0x32, 0x4a, 0xff, 0x22, 0x5c, 0x0a]))\n` +
            `process.stdout.write("done\\n")`
        )
      )
    }, ["--log-format", "json"])
    await wake("big")
    await s.waitFor(/"line":"done"/)
    const events = s.lines.map((line) => JSON.parse(line) as Record<string, unknown>)
    const pieces = events.filter((e) => e.event === "output" && typeof e.line === "string" && e.line.startsWith("y"))
    expect(pieces.map((e) => e.line).join("")).toBe("y".repeat(100000))
    expect(pieces.slice(0, -1).every((e) => e.continued === true)).toBe(true)
    expect(pieces.at(-1)!.continued).toBeUndefined()
    expect(events.some((e) => e.line === "\u0000\u001b[2J\uFFFD\"\\")).toBe(true)
  })
})

/** soad's resident memory, from /proc (kB). */
const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1])

describe("an app that floods", () => {
  it("cannot grow soad's memory beyond a bound, and another service is still answered", async () => {
    const d0 = dir()
    const flood = script(d0, "flood", `import * as Fs from "node:fs"\nconst b = Buffer.alloc(1 << 16, "y\\n")\nfor (;;) Fs.writeSync(1, b)`)
    const { s, d, wake } = await start({ flood, web: appCommand })
    const before = rssKb(s.pid)
    expect((await wake("flood")).code).toBe(0)
    await s.waitFor(/^\[flood\] y$/)
    let peak = 0
    const answered: Array<number> = []
    for (let i = 0; i < 8; i++) {
      await sleep(500)
      peak = Math.max(peak, rssKb(s.pid))
      const asked = Date.now()
      const reply = await get({ socketPath: Path.join(d, "web.sock") })
      answered.push(Date.now() - asked)
      expect(typeof reply.pid).toBe("number")
    }
    // Measured here: about +30 to +45 MB while an app writes as fast as a pipe takes it (Node's read buffers).
    expect(peak - before).toBeLessThan(150 * 1024)
    // A generous bound: the point is that the other service is answered at all while the flood goes on.
    expect(Math.max(...answered)).toBeLessThan(5000)
    await s.waitFor(/WARN \[flood\] the app writes more than 10000 lines\/s/)
  })

  /** An app that numbers its lines as fast as it can; on SIGTERM it writes 200,000 last lines and exits 0. */
  const numbering = `import signal, sys
stop = False
def term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, term)
out = sys.stdout
i = 0
while not stop:
    i += 1
    out.write(f"{i}\\n")
for j in range(200000):
    out.write(f"last {j}\\n")
out.flush()
`

  it("is paused, not read and dropped: every line arrives, in order, after the first second too; said once; its stop completes", async () => {
    const d = dir()
    const app = Path.join(d, "numbering.py")
    Fs.writeFileSync(app, numbering)
    const control = Path.join(d, "control.sock")
    const config = writeConfig(
      d,
      `[services.flood]\nlisten = [${JSON.stringify(Path.join(d, "flood.sock"))}]\ncommand = ["python3", ${JSON.stringify(app)}]\n` +
        // Without the release at the stop, the 200,000 last lines would take 20 s at the rate: SIGKILL at 10 s.
        `time-until-stop = 600\nstop-timeout = 10\n`
    )
    const log = Path.join(d, "soad.log")
    soad(["-c", config, "--control", control, "--log-format", "json"], { stderrFile: log })
    await eventually(() => Fs.existsSync(control), 10_000, "the control socket")
    const events = () =>
      Fs.readFileSync(log, "utf8").split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>)
    expect((await cli(["wake", "flood", "--control", control])).code).toBe(0)
    // Lines keep coming after the first second's 10,000: the pipe is read again at each second.
    let latest = 0
    await eventually(() => {
      const last = ChildProcess.spawnSync(process.execPath, [bin, "logs", "flood", "-n", "1", "--control", control], { encoding: "utf8" })
      latest = Number(last.stdout.trim())
      return latest > 2 * 10_000
    }, 20_000, "lines after the first two seconds")
    expect((await cli(["sleep", "flood", "--control", control])).code).toBe(0)
    await eventually(() => events().some((e) => e.event === "exited"), 20_000, "the app's exit")
    const all = events()
    const numbered = all.filter((e) => e.event === "output" && /^\d+$/.test(e.line as string)).map((e) => Number(e.line))
    // None dropped up to the stop (beyond the rate, the stopping app's last lines may be).
    expect(numbered.slice(0, latest)).toEqual(Array.from({ length: latest }, (_, i) => i + 1))
    expect(all.filter((e) => e.event === "output_paused")).toEqual([
      expect.objectContaining({ service: "flood", level: "warn", rate_lines: 10_000, stream: "stdout" })
    ])
    // The stop completed by itself: the app wrote its last lines and exited 0, with no SIGKILL.
    expect(all.find((e) => e.event === "exited")).toMatchObject({ code: 0 })
    expect(all.some((e) => e.event === "kill")).toBe(false)
    // Said a second after the drops, with their count.
    await eventually(() => events().some((e) => e.event === "output_dropped" && (e.lines as number) > 0), 10_000, "output_dropped")
  })
})

describe("soad logs", () => {
  const counting = (n: number) => writer(`for (let i = 1; i <= ${n}; i++) console.log("n " + i)`)

  it("-n 5 prints the last 5 lines", async () => {
    const d0 = dir()
    const { s, control, wake } = await start({ counter: script(d0, "counter", counting(20)) })
    await wake("counter")
    await s.waitFor(/^\[counter\] n 20$/)
    const result = await cli(["logs", "counter", "-n", "5", "--control", control])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe("n 16\nn 17\nn 18\nn 19\nn 20\n")
  })

  it("-f follows the lines the app writes next", async () => {
    const d0 = dir()
    const ticking = `let i = 0; setInterval(() => console.log("tick " + ++i), 100)`
    const { s, control, wake } = await start({ ticker: script(d0, "ticker", ticking) })
    await wake("ticker")
    await s.waitFor(/^\[ticker\] tick 2$/)
    const child = ChildProcess.spawn(process.execPath, [bin, "logs", "ticker", "-n", "1", "-f", "--control", control], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.push(child)
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
    await eventually(() => out.split("\n").filter((line) => line.startsWith("tick")).length >= 4, 10_000, "followed lines")
    const ticks = out.trim().split("\n").map((line) => Number(line.slice(5)))
    // consecutive: the tail, then every new line, none lost or repeated
    expect(ticks.slice(1)).toEqual(ticks.slice(1).map((_, i) => ticks[0]! + 1 + i))
  })

  it("an unknown service: one line, exit 1", async () => {
    const d0 = dir()
    const { control } = await start({ counter: script(d0, "counter", counting(3)) })
    const result = await cli(["logs", "nope", "--control", control])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toBe("soad: no service 'nope'; the services are counter\n")
  })
})

describe("an app's output cannot drive the operator's terminal", () => {
  // Fault: the app's bytes went to the terminal as they were: a CR overwrote `[evil] ` to forge another service's
  // line, OSC sequences set the window's title or wrote the clipboard, CSI (also C1's one-character U+009B) cleared
  // the screen.
  const hostile = ["\r[other] forged", "\u001b]0;owned\u0007", "\u001b]52;c;Y3VybCBldmlsIHwgc2g=\u0007", "\u001b[2J", "\u009b31m C1", "end"]
  const app = writer(`for (const line of ${JSON.stringify(hostile)}) process.stdout.write(line + "\\n")`)
  /** A control character other than TAB. */
  // eslint-disable-next-line no-control-regex
  const control = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/
  const shown = (line: string) => line.replace(new RegExp(control.source, "g"), "\ufffd")

  it("text: soad's stderr and soad logs show each control character as U+FFFD", async () => {
    const d0 = dir()
    const { s, control: path, wake } = await start({ evil: script(d0, "evil", app) })
    await wake("evil")
    await s.waitFor(/^\[evil\] end$/)
    expect(s.lines.filter((line) => line.startsWith("[evil] "))).toEqual(hostile.map((line) => `[evil] ${shown(line)}`))
    expect(s.lines.some((line) => control.test(line))).toBe(false)
    const logs = await cli(["logs", "evil", "--control", path])
    expect(logs.code).toBe(0)
    expect(logs.stdout).toBe(hostile.map((line) => shown(line) + "\n").join(""))
  })

  it("json: each line is the exact text, escaped", async () => {
    const d0 = dir()
    const { s, wake } = await start({ evil: script(d0, "evil", app) }, ["--log-format", "json"])
    await wake("evil")
    await s.waitFor(/"line":"end"/)
    expect(s.lines.some((line) => control.test(line))).toBe(false)
    const lines = s.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((event) => event.event === "output")
    expect(lines.map((event) => event.line)).toEqual(hostile)
  })
})
