/**
 * Fault: soad itself holds more than 1,024 fds (relayed connections, ~1,000 listeners, or fds its launcher left
 * open). An app's soft open-file limit is 1024 (as systemd gives it, for select()); lowered in the child before
 * the listeners were moved into place, the copy (F_DUPFD_CLOEXEC above 3 + n) failed with EMFILE as soon as fds
 * 4–1023 were all taken in soad, and no app of any service could start ("fcntl(F_DUPFD): Too many open files").
 * Promise: whatever soad holds, every app starts, with its listener at fd 3 and a soft limit of 1024.
 *
 * soad is made to hold the fds the cheapest way that reproduces it: its launcher leaves 1,100 fds open (without
 * close-on-exec) when it execs soad, as a careless supervisor does.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { bin, describeAsRoot, eventually, freePort, get, root, type Soad, tempDirs } from "../harness.js"

const dir = tempDirs()
/** A plain Python server (Node would raise its own soft limit at start): it reports its fd and open-file limits. */
const app = `"python3", ${JSON.stringify(Path.join(root, "test", "fixtures", "shutdown_app.py"))}`

/** How many fds the launcher leaves open for soad: more than the 1,020 that fill fds 4–1023. */
const held = 1100

/** The hard open-file limit here: soad (Node) raises its soft limit to it; the test needs room above 1,100. */
const hardLimit = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(Fs.readFileSync("/proc/self/limits", "utf8"))?.[1] ?? 0)

/**
 * Starts soad as a launcher that leaves `held` fds open would: python opens them (inheritable) and execs soad in the
 * same process.
 */
const soadHolding = (args: ReadonlyArray<string>): Soad & { readonly fds: () => number } => {
  const child = ChildProcess.spawn("python3", [
    "-c",
    [
      "import os, sys",
      `fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(${held})]`,
      "for fd in fds: os.set_inheritable(fd, True)",
      "os.execv(sys.argv[1], sys.argv[1:])"
    ].join("\n"),
    process.execPath,
    bin,
    ...args
  ], { stdio: ["ignore", "pipe", "pipe"], cwd: root })
  const lines: Array<string> = []
  let buffer = ""
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString()
    let newline: number
    while ((newline = buffer.indexOf("\n")) >= 0) {
      lines.push(buffer.slice(0, newline))
      buffer = buffer.slice(newline + 1)
    }
  }
  child.stdout.on("data", onData)
  child.stderr.on("data", onData)
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)))
  const waitFor = async (pattern: RegExp, timeoutMs = 10_000) => {
    await eventually(() => lines.some((line) => pattern.test(line)), timeoutMs, `a line matching ${pattern}; soad said:\n${lines.join("\n")}`)
    return lines.find((line) => pattern.test(line))!
  }
  return {
    process: child,
    pid: child.pid!,
    lines,
    output: () => lines.join("\n"),
    waitFor,
    exited,
    count: (pattern) => lines.filter((line) => pattern.test(line)).length,
    fds: () => Fs.readdirSync(`/proc/${child.pid}/fd`).length
  }
}

const stop = async (s: Soad) => {
  s.process.kill("SIGTERM")
  await s.exited
}

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

const suite = hardLimit >= 2 * held ? describe : describe.skip

suite(`soad holding ${held} fds${hardLimit >= 2 * held ? "" : ` [skipped: the hard open-file limit here is ${hardLimit}]`}`, () => {
  it("every service's app still starts, gets its listener at fd 3, and keeps a soft open-file limit of 1024", async () => {
    const d = dir()
    const port = await freePort()
    const config = Path.join(d, "apps.toml")
    Fs.writeFileSync(config, `
[services.one]
listen = ["${d}/one.sock"]
command = [${app}]
[services.two]
listen = ["127.0.0.1:${port}"]
command = [${app}]
`)
    const s = soadHolding(["-c", config, "--log-format", "json"])
    try {
      await s.waitFor(/"listening"/)
      await eventually(() => events(s, "listening").length === 2, 10_000, "both services listening")
      expect(s.fds()).toBeGreaterThan(held)
      const replies = [get({ socketPath: Path.join(d, "one.sock") }), get({ host: "127.0.0.1", port })]
      replies.forEach((reply) => reply.catch(() => {}))
      // Both apps start, or say why not (a failed start backs off: the request would only time out).
      await eventually(() => events(s, "ready").length + events(s, "start_failed").length >= 2, 10_000, "both starts")
      expect(events(s, "start_failed").map((e) => e.message)).toEqual([])
      for (const reply of replies) expect(await reply).toMatchObject({ fd: 3, nofile: 1024, nofileHard: hardLimit })
    } finally {
      await stop(s)
    }
  })
})

suite(`soad holding ${held} fds, a start that fails at exec`, () => {
  it("is reported through the error pipe, which sits above the app's lowered limit (a missing #! interpreter)", async () => {
    const d = dir()
    const script = Path.join(d, "app.sh")
    Fs.writeFileSync(script, "#!/nonexistent/interpreter\n", { mode: 0o755 })
    const s = soadHolding(["-s", Path.join(d, "one.sock"), "--log-format", "json", "--", script])
    try {
      await s.waitFor(/"listening"/)
      get({ socketPath: Path.join(d, "one.sock") }).catch(() => {})
      await s.waitFor(/"start_failed"/)
      expect(events(s, "start_failed")[0]?.message).toBe(
        `cannot start the app: '${script}' exists, but its interpreter /nonexistent/interpreter (its #! line) does not`
      )
    } finally {
      await stop(s)
    }
  })
})

describeAsRoot(`soad holding ${held} fds, an app run as nobody`, () => {
  it.skipIf(hardLimit < 2 * held)("the counting sentinel starts too (no fallback to readability), and the app serves", async () => {
    const d = dir()
    const config = Path.join(d, "apps.toml")
    Fs.writeFileSync(config, `
[services.one]
listen = ["${d}/one.sock"]
command = [${app}]
user = "nobody"
socket-mode = "0666"
`)
    const s = soadHolding(["-c", config, "--log-format", "json"])
    try {
      await s.waitFor(/"listening"/)
      const reply = get({ socketPath: Path.join(d, "one.sock") })
      reply.catch(() => {})
      await s.waitFor(/"ready"|"start_failed"/)
      expect(events(s, "counting_fallback").map((e) => e.message)).toEqual([])
      expect(events(s, "start_failed").map((e) => e.message)).toEqual([])
      expect(await reply).toMatchObject({ fd: 3, uid: 65534, nofile: 1024 })
    } finally {
      await stop(s)
    }
  })
})
