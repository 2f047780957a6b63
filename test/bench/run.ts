/**
 * `npm run bench`: soad side by side with the reference tools, in one run, printed as a Markdown table.
 *
 * - cold activation (connect() to the full response): soad, systemd-socket-activate, the app already running;
 * - with the app running: latency and requests/s through soad's socket vs. the app started directly;
 * - soad's own memory while idle, its start-up time, and its CPU use (idle, and one request every 100 ms); beside
 *   it, the stack's floor: a minimal Effect program, and one with @effect/cli (test/bench/floor/);
 * - the warm path: new connections to a running app through soad's listener vs systemd-socket-activate's, and
 *   soad's CPU (with its counting sentinel's) under that load;
 * - idle-stop precision: last request to the shutdown signal, against -t;
 * - a neighbour that floods its output: soad's CPU, and a quiet service's cold start and `soad status` meanwhile;
 * - a notify socket flooded by a stranger: the notify datagram parser's CPU per datagram at its size limit, the
 *   app's READY=1 under the flood, soad's CPU and log lines meanwhile.
 * - the parsers of outside bytes (a request head, a control request, a line of an app's output): the CPU of one
 *   adversarial input at its size limit, under soad's own V8 flags (`parsers`, test/bench/parsers.ts).
 * - a busy host (scale): soad's CPU while apps start and while it looks at open connections, with 0 and with
 *   20,000 other TCP sockets on the host, asking the kernel (sock_diag) and reading /proc/net (SOAD_SOCK_DIAG=0).
 * - the status page of --metrics with 1,000 services: its size, GET / against GET /metrics, soad's CPU a page
 *   (`page`, test/bench/page.ts).
 * - the control commands (control): `soad --version`, `--help` and `soad status` of 1 and 1,000 services against
 *   `node -e 0`, and soad's own share of a status of 1,000.
 *
 * Medians of BENCH_RUNS runs (default 7). Needs systemd-socket-activate and wrk for their rows (skipped, and
 * said so, when missing).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as NotifyMessage from "../../src/core/notifyMessage.js"
import * as Neighbours from "./neighbours.js"
import * as Page from "./page.js"
import * as Parsers from "./parsers.js"
import * as Scale from "./scale.js"
import { hostSockets } from "../hostSockets.js"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..") // dist/bench.js
const bin = Path.join(root, "dist", "bin.cjs")
/** The command as installed (`dist/soad`: the launcher with its V8 flags, then bin.cjs). */
const command = Path.join(root, "dist", "soad")
const app = Path.join(root, "test", "bench", "app.mjs")
const runs = Number(process.env.BENCH_RUNS ?? 7)
/** BENCH_ONLY=cold,idle,… runs only those parts (cold, running, idle, many, proxy, precision, accept, flood, notify, parsers, neighbours, scale, page, control, warm); all by default. */
const only = process.env.BENCH_ONLY?.split(",")
const part = (name: string) => only === undefined || only.includes(name)
const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-bench-"))
const children = new Set<ChildProcess.ChildProcess>()

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}
const ms = (value: number, digits = 1) => `${value.toFixed(digits)} ms`
const installed = (program: string) => ChildProcess.spawnSync("sh", ["-c", `command -v ${program}`]).status === 0

interface Proc {
  readonly child: ChildProcess.ChildProcess
  readonly lines: Array<{ readonly at: number; readonly text: string }>
  readonly waitFor: (pattern: RegExp, count?: number, timeoutMs?: number) => Promise<{ at: number; text: string }>
}

/**
 * Every process gets the same small environment: systemd-socket-activate passes the app only a few variables,
 * and some (NODE_EXTRA_CA_CERTS, say) make Node start tens of milliseconds slower.
 */
const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/" }

const start = (command: string, args: ReadonlyArray<string>, extraEnv: Record<string, string> = {}): Proc => {
  const child = ChildProcess.spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...env, ...extraEnv } })
  children.add(child)
  child.on("exit", () => children.delete(child))
  const lines: Array<{ at: number; text: string }> = []
  let buffer = ""
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString()
    let newline: number
    while ((newline = buffer.indexOf("\n")) >= 0) {
      lines.push({ at: performance.now(), text: buffer.slice(0, newline) })
      buffer = buffer.slice(newline + 1)
    }
  }
  child.stdout!.on("data", onData)
  child.stderr!.on("data", onData)
  const waitFor = async (pattern: RegExp, count = 1, timeoutMs = 20_000) => {
    const end = Date.now() + timeoutMs
    for (;;) {
      const matches = lines.filter((line) => pattern.test(line.text))
      if (matches.length >= count) return matches[count - 1]!
      if (Date.now() > end || child.exitCode !== null) {
        throw new Error(`${command}: no ${count}× ${pattern}:\n${lines.map((l) => l.text).join("\n")}`)
      }
      await sleep(2)
    }
  }
  return { child, lines, waitFor }
}

const stop = async (proc: Proc) => {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
  proc.child.kill("SIGTERM")
  await new Promise((resolve) => proc.child.once("exit", resolve))
}

type Target = { readonly socketPath: string } | { readonly host: string; readonly port: number }

/** One GET on a new connection: milliseconds from connect() to the full response. */
const timedGet = (target: Target, path = "/"): Promise<number> =>
  new Promise((resolve, reject) => {
    const t0 = performance.now()
    Http.get({ ...target, path, agent: false }, (response) => {
      response.resume()
      response.on("end", () => resolve(performance.now() - t0))
    }).on("error", reject)
  })

const waitForFile = async (path: string) => {
  while (!Fs.existsSync(path)) await sleep(2)
}

const procStat = (pid: number) => {
  const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return { ticks: Number(fields[11]) + Number(fields[12]) }
}
const contextSwitches = (pid: number): number => {
  let total = 0
  for (const task of Fs.readdirSync(`/proc/${pid}/task`)) {
    const status = Fs.readFileSync(`/proc/${pid}/task/${task}/status`, "utf8")
    total += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)![1])
    total += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)![1])
  }
  return total
}
const memory = (pid: number) => {
  const rollup = Fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8")
  return {
    rss: Number(/VmRSS:\s+(\d+)/.exec(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024,
    pss: Number(/^Pss:\s+(\d+)/m.exec(rollup)![1]) / 1024,
    /** Pages no other process shares: what one more such process costs. */
    private: (Number(/^Private_Clean:\s+(\d+)/m.exec(rollup)![1]) + Number(/^Private_Dirty:\s+(\d+)/m.exec(rollup)![1])) / 1024
  }
}


const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = Http.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })

const rows: Array<[string, string, string]> = []
const row = (what: string, value: string, note = "") => {
  rows.push([what, value, note])
  console.error(`  ${what}: ${value}${note === "" ? "" : ` (${note})`}`)
}

/** The C programs of the benchmark (the tiny app, the minimal activator), compiled into the work directory. */
const compile = (name: string): string | undefined => {
  const out = Path.join(work, name)
  const source = Path.join(root, "test", "bench", `${name}.c`)
  const result = ChildProcess.spawnSync("cc", ["-O2", "-o", out, source], { encoding: "utf8" })
  if (result.status !== 0) {
    console.error(`cannot compile ${source}: ${result.stderr ?? result.error}`)
    return undefined
  }
  return out
}

/** Cold activation of the tiny C app: soad against the minimal C activator, in the same run, alternating. */
const coldTiny = async (tinyApp: string, activator: string) => {
  const soadPath = Path.join(work, "tiny-soad.sock")
  const minPath = Path.join(work, "tiny-min.sock")
  const soad = start(command, ["-s", soadPath, "-t", "0.2", "--min-uptime", "0", "--", tinyApp])
  const floor = start(activator, [minPath, tinyApp])
  await soad.waitFor(/listening on/)
  await floor.waitFor(/listening on/)
  const viaSoad: Array<number> = []
  const viaFloor: Array<number> = []
  for (let i = 1; i <= runs * 3; i++) {
    viaSoad.push(await timedGet({ socketPath: soadPath }))
    await soad.waitFor(/app exited/, i)
    viaFloor.push(await timedGet({ socketPath: minPath }))
    const started = await floor.waitFor(/^started \d+/, i)
    process.kill(Number(started.text.split(" ")[1]), "SIGTERM")
    await sleep(50)
  }
  await stop(soad)
  await stop(floor)
  return { soad: median(viaSoad), floor: median(viaFloor) }
}

/** Cold activation through soad: connect() to the full response, with the app stopped before each run. */
const coldSoad = async () => {
  const socketPath = Path.join(work, "cold-soad.sock")
  const soad = start(command, ["-s", socketPath, "-t", "0.2", "--min-uptime", "0", "--", process.execPath, app])
  await soad.waitFor(/listening on/)
  const total: Array<number> = []
  const spawn: Array<number> = []
  for (let i = 1; i <= runs; i++) {
    total.push(await timedGet({ socketPath }))
    const started = await soad.waitFor(/app started/, i)
    spawn.push(Number(/, ([\d.]+) ms after the connection/.exec(started.text)![1]))
    await soad.waitFor(/app exited/, i)
  }
  await stop(soad)
  return { total: median(total), spawn: median(spawn) }
}

/** Cold activation through systemd-socket-activate (it execs the app once, so a new launcher per run). */
const coldSystemd = async () => {
  const total: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const socketPath = Path.join(work, `cold-systemd-${i}.sock`)
    const launcher = start("systemd-socket-activate", ["-l", socketPath, process.execPath, app])
    await waitForFile(socketPath)
    await sleep(50)
    total.push(await timedGet({ socketPath }))
    await stop(launcher)
    Fs.rmSync(socketPath, { force: true })
  }
  return median(total)
}

/** The app already running, bound by itself: the same request. */
const warmDirect = async () => {
  const socketPath = Path.join(work, "direct.sock")
  const direct = start(process.execPath, [app, "--listen", socketPath])
  await direct.waitFor(/ready/)
  await timedGet({ socketPath })
  const total: Array<number> = []
  for (let i = 0; i < runs; i++) total.push(await timedGet({ socketPath }))
  await stop(direct)
  return median(total)
}

/** Latency over 500 sequential new connections, and wrk's requests/s, to a TCP port. */
const loadOn = async (port: number) => {
  const target = { host: "127.0.0.1", port }
  for (let i = 0; i < 50; i++) await timedGet(target)
  const latencies: Array<number> = []
  for (let i = 0; i < 500; i++) latencies.push(await timedGet(target))
  const wrk = (extra: ReadonlyArray<string>) => {
    if (!installed("wrk")) return undefined
    const out = ChildProcess.spawnSync("wrk", ["-t", "2", "-c", "32", "-d", "5s", ...extra, `http://127.0.0.1:${port}/`], {
      encoding: "utf8",
      env
    }).stdout
    return Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  }
  return {
    p50: median(latencies),
    p99: percentile(latencies, 99),
    keepAlive: wrk([]),
    close: wrk(["-H", "Connection: close"])
  }
}

const runningComparison = async () => {
  const soadPort = await freePort()
  const soad = start(command, ["-l", `127.0.0.1:${soadPort}`, "-t", "300", "--", process.execPath, app])
  await soad.waitFor(/listening on/)
  const viaSoad = await loadOn(soadPort)
  const soadPid = soad.child.pid!
  await stop(soad)
  const directPort = await freePort()
  const direct = start(process.execPath, [app, "--listen", String(directPort)])
  await direct.waitFor(/ready/)
  const viaDirect = await loadOn(directPort)
  await stop(direct)
  return { viaSoad, viaDirect, soadPid }
}

/** soad's sentinels (the counting helper of an app run as another user): processes named soad-sentinel under `parent`. */
const sentinelsOf = (parent: number): Array<number> =>
  Fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.split(") ")[1]!.split(" ")[1])
      return stat.includes("(soad-sentinel)") && ppid === parent ? [Number(entry)] : []
    } catch {
      return []
    }
  })

/** CPU time (ms) of these processes so far, all threads (utime + stime). */
const cpuMillis = (pids: ReadonlyArray<number>): number =>
  pids.reduce((total, pid) => total + procStat(pid).ticks * 10, 0)

/** Rounds of wrk per warm-path figure: soad and systemd-socket-activate take turns; each figure is their median. */
const warmRounds = 3

/**
 * The warm path: new connections to a running app (the tiny C app, blocking accept) through soad's listener and
 * through systemd-socket-activate's (which adds nothing once the app runs), `wrk -t2 -c32 -H "Connection: close"`,
 * alternating round after round; and soad's CPU (with its counting sentinel's) per second of that load. `user`: the
 * app runs as that user (soad counts through a sentinel then), under systemd-socket-activate through setpriv.
 */
const warmComparison = async (tinyApp: string, user: { readonly name: string; readonly uid: number } | undefined) => {
  if (user !== undefined) Fs.chmodSync(work, 0o711) // the other user runs the tiny app from it (mkdtemp made it 0700)
  const soadPort = await freePort()
  const soad = start(command, [
    "-l",
    `127.0.0.1:${soadPort}`,
    "-t",
    "300",
    ...(user === undefined ? [] : ["--user", user.name]),
    "--",
    tinyApp
  ])
  await soad.waitFor(/listening on/)
  const systemdPort = await freePort()
  const asUser = user === undefined ? [] : ["setpriv", `--reuid=${user.uid}`, `--regid=${user.uid}`, "--clear-groups"]
  const launcher = installed("systemd-socket-activate")
    ? start("systemd-socket-activate", ["-l", `127.0.0.1:${systemdPort}`, ...asUser, tinyApp])
    : undefined
  await sleep(300)
  await timedGet({ host: "127.0.0.1", port: soadPort }) // starts the app
  if (launcher !== undefined) await timedGet({ host: "127.0.0.1", port: systemdPort })
  const load = (port: number) => wrk(`http://127.0.0.1:${port}/`, 32, ["-H", "Connection: close"])
  const viaSoad: Array<number> = []
  const viaSystemd: Array<number> = []
  const cpu: Array<number> = []
  for (let round = 0; round < warmRounds; round++) {
    const pids = [soad.child.pid!, ...sentinelsOf(soad.child.pid!)]
    const before = cpuMillis(pids)
    const began = performance.now()
    viaSoad.push(load(soadPort).rps)
    cpu.push((cpuMillis(pids) - before) / ((performance.now() - began) / 1000))
    if (launcher !== undefined) viaSystemd.push(load(systemdPort).rps)
  }
  const sentinels = sentinelsOf(soad.child.pid!).length
  if (launcher !== undefined) await stop(launcher)
  await stop(soad)
  return {
    soad: median(viaSoad),
    systemd: launcher === undefined ? undefined : median(viaSystemd),
    ratios: launcher === undefined ? [] : viaSoad.map((rps, i) => rps / viaSystemd[i]!),
    cpu: median(cpu),
    sentinels
  }
}

const reportWarm = async () => {
  console.error("the warm path: new connections to a running app, soad vs. systemd-socket-activate")
  const tinyApp = compile("tiny-app")
  if (tinyApp === undefined) return row("the warm path", "no C compiler")
  if (!installed("wrk")) return row("the warm path", "wrk not installed")
  const cases: Array<[string, { readonly name: string; readonly uid: number } | undefined]> = [["soad's own user", undefined]]
  if (process.geteuid?.() === 0) cases.push(["another user (nobody: a sentinel counts)", { name: "nobody", uid: 65534 }])
  else row("the warm path, app as another user", "needs root")
  for (const [who, user] of cases) {
    const warm = await warmComparison(tinyApp, user)
    const ratio = warm.systemd === undefined
      ? "systemd-socket-activate not installed"
      : `soad/systemd ${(warm.soad / warm.systemd).toFixed(2)} (rounds ${warm.ratios.map((r) => r.toFixed(2)).join(", ")})`
    row(`warm path, new connection per request (wrk -c32, tiny C app as ${who}): soad`, `${warm.soad.toFixed(0)} req/s`, ratio)
    if (warm.systemd !== undefined) row(`the same: systemd-socket-activate`, `${warm.systemd.toFixed(0)} req/s`)
    row(
      `the same: soad's CPU under that load${user === undefined ? "" : ", with its sentinel"}`,
      `${warm.cpu.toFixed(0)} ms per second`,
      `median of ${warmRounds} rounds${user === undefined ? "" : `; ${warm.sentinels} sentinel`}`
    )
  }
}

/**
 * soad idle with no app: memory, start-up, and CPU and wake-ups over 10 s, from 15 s after its start (V8 tidies
 * its heap in the first seconds after start-up; after that soad sleeps in epoll_wait until a connection comes).
 */
const idle = async () => {
  const socketPath = Path.join(work, "idle.sock")
  const [effectFloor, cliFloor, hiddenFloor] = [floor("effect"), floor("cli"), floor("effect", true)]
  const soad = start(command, ["-s", socketPath, "-t", "300", "--", process.execPath, app])
  // The reference: an empty Node process, started at the same moment and measured at the same moments; and the
  // floors of soad's stack (test/bench/floor/), likewise.
  const empty = start(process.execPath, ["-e", "setInterval(() => {}, 1e9)"])
  const floors = [
    start(process.execPath, [...soadFlags(), effectFloor]),
    start(process.execPath, [...soadFlags(), cliFloor, "-s", socketPath]),
    start(process.execPath, [...soadFlags(), hiddenFloor])
  ]
  const launched = (await soad.waitFor(/listening on/)).at
  for (const floor of floors) await floor.waitFor(/^ready$/)
  await sleep(Math.max(0, 5_000 - (performance.now() - launched)))
  const pid = soad.child.pid!
  const at5 = {
    soad: memory(pid),
    empty: memory(empty.child.pid!),
    effect: memory(floors[0]!.child.pid!),
    cli: memory(floors[1]!.child.pid!),
    hidden: memory(floors[2]!.child.pid!)
  }
  for (const floor of floors) await stop(floor)
  const startups: Array<number> = []
  const uncachedStartups: Array<number> = []
  const versions: Array<number> = []
  const nodes: Array<number> = []
  const startup = async (path: string, extraEnv: Record<string, string> = {}) => {
    const t0 = performance.now()
    const other = start(command, ["-s", path, "--", process.execPath, app], extraEnv)
    const listening = await other.waitFor(/listening on/)
    await stop(other)
    return listening.at - t0
  }
  for (let i = 0; i < runs; i++) {
    startups.push(await startup(Path.join(work, `startup-${i}.sock`)))
    uncachedStartups.push(await startup(Path.join(work, `startup-uncached-${i}.sock`), { SOAD_CODE_CACHE: "0" }))
    versions.push(timeRun(command, ["--version"]))
    nodes.push(timeRun(process.execPath, ["-e", "0"]))
  }
  await sleep(Math.max(0, 15_000 - (performance.now() - launched)))
  const at15 = { soad: memory(pid), empty: memory(empty.child.pid!) }
  await stop(empty)
  const before = { ...procStat(pid), switches: contextSwitches(pid) }
  await sleep(10_000)
  const after = { ...procStat(pid), switches: contextSwitches(pid) }
  // Then the app running, one request every 100 ms for 10 s (from once soad has seen it ready: what follows a
  // start, logging and the readiness check, runs after the first answer on the cold path).
  await timedGet({ socketPath })
  await soad.waitFor(/the app accepts/)
  await sleep(500)
  const busyBefore = procStat(pid)
  for (let i = 0; i < 100; i++) {
    await timedGet({ socketPath })
    await sleep(100)
  }
  const busyAfter = procStat(pid)
  await stop(soad)
  return {
    startup: median(startups),
    uncachedStartup: median(uncachedStartups),
    version: median(versions),
    node: median(nodes),
    at5,
    at15,
    mem: at15.soad,
    idleCpu: (after.ticks - before.ticks) * 10,
    idleSwitches: after.switches - before.switches,
    busyCpu: (busyAfter.ticks - busyBefore.ticks) * 10
  }
}

/** The V8 flags the `soad` command gives node (src/soad.sh's last line), for programs measured beside it. */
const soadFlags = (): Array<string> => {
  const exec = /^exec "\$node" ([^"]*) "/m.exec(Fs.readFileSync(Path.join(root, "src", "soad.sh"), "utf8"))
  if (exec === null) throw new Error("src/soad.sh: no exec line with node's flags")
  return exec[1]!.split(" ")
}

/**
 * What soad's bin.ts does around the evaluation of its bundle (hiddenWhileLoading): process.stdout and
 * globalThis.performance hidden, so that Effect's logger and clock, which read them when evaluated, make neither
 * (node:net and Node's streams for a pipe, perf_hooks). As a banner and a footer of a floor's bundle.
 */
const hidden = {
  banner: "var floorHidden=[[globalThis,'performance'],[process,'stdout']].map(([o,n])=>{const d=Object.getOwnPropertyDescriptor(o,n);" +
    "Object.defineProperty(o,n,{configurable:true,writable:true,value:undefined});return [o,n,d]});",
  footer: "for(const [o,n,d] of floorHidden)Object.defineProperty(o,n,d);"
}

/**
 * test/bench/floor/NAME.ts bundled as soad's program is (one minified CommonJS file): its path. `asSoadLoads`: with
 * what soad hides while its bundle is evaluated hidden too.
 */
const floor = (name: string, asSoadLoads = false): string => {
  const out = Path.join(work, `floor-${name}${asSoadLoads ? "-hidden" : ""}.cjs`)
  const built = ChildProcess.spawnSync(Path.join(root, "node_modules", ".bin", "esbuild"), [
    Path.join(root, "test", "bench", "floor", `${name}.ts`),
    "--bundle",
    "--platform=node",
    "--format=cjs",
    "--target=node20",
    "--minify",
    `--outfile=${out}`,
    "--log-level=warning",
    ...(asSoadLoads ? [`--banner:js=${hidden.banner}`, `--footer:js=${hidden.footer}`] : [])
  ], { stdio: "inherit" })
  if (built.status !== 0) throw new Error(`esbuild of test/bench/floor/${name}.ts failed`)
  return out
}

/** Wall time of a command that exits by itself, in milliseconds (same small environment as the rest, plus `more`). */
const timeRun = (program: string, args: ReadonlyArray<string>, more: Record<string, string> = {}): number => {
  const t0 = performance.now()
  ChildProcess.spawnSync(program, args, { env: { ...env, ...more }, stdio: "ignore" })
  return performance.now() - t0
}

/** 100 idle services in one soad (-c): memory, start-up, and cold activation of one of them. */
const manyServices = async () => {
  const count = 100
  const lines: Array<string> = []
  for (let i = 0; i < count; i++) {
    lines.push(`[services.s${i}]`)
    lines.push(`listen = [${JSON.stringify(Path.join(work, `many-${i}.sock`))}]`)
    lines.push(`command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(app)}]`)
    lines.push(`time-until-stop = 0.2`)
  }
  const file = Path.join(work, "many.toml")
  Fs.writeFileSync(file, lines.join("\n") + "\n")
  const t0 = performance.now()
  const soad = start(command, ["-c", file])
  const last = await soad.waitFor(/listening on/, count)
  const startup = last.at - t0
  await sleep(Math.max(0, 5_000 - (performance.now() - last.at)))
  const mem = memory(soad.child.pid!) // 5 s after all listen
  const socketPath = Path.join(work, `many-${count / 2}.sock`)
  const total: Array<number> = []
  for (let i = 1; i <= runs; i++) {
    total.push(await timedGet({ socketPath }))
    await soad.waitFor(/app exited/, i)
  }
  await stop(soad)
  return { count, startup, mem, cold: median(total) }
}

/** wrk against a URL: requests/s, latency p50/p99 (ms), transfer MB/s. */
const wrk = (url: string, connections: number, extra: ReadonlyArray<string> = []) => {
  const out = ChildProcess.spawnSync("wrk", ["-t", "2", "-c", String(connections), "-d", "5s", "--latency", ...extra, url], {
    encoding: "utf8",
    env
  }).stdout
  const latency = (label: string) => {
    const match = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out)
    if (match === null) return NaN
    const value = Number(match[1])
    return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value
  }
  const transfer = /Transfer\/sec:\s+([\d.]+)(KB|MB|GB)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: latency("50"),
    p99: latency("99"),
    mbps: transfer === null ? NaN : Number(transfer[1]) * (transfer[2] === "GB" ? 1024 : transfer[2] === "KB" ? 1 / 1024 : 1)
  }
}

/** The median of each figure over several wrk runs. */
const medianOf = (results: ReadonlyArray<ReturnType<typeof wrk>>): ReturnType<typeof wrk> => ({
  rps: median(results.map((r) => r.rps)),
  p50: median(results.map((r) => r.p50)),
  p99: median(results.map((r) => r.p99)),
  mbps: median(results.map((r) => r.mbps))
})

/** Rounds of wrk per proxy figure: soad and systemd-socket-proxyd take turns, and each figure is their median. */
const proxyRounds = 3

/**
 * Proxy mode: soad's relay, systemd-socket-proxyd, and the app directly, under the same load. soad and proxyd run
 * side by side and take turns, round after round (2 shared cores drift: one 5 s run each was noise).
 */
const proxyComparison = async () => {
  const proxyd = ["/lib/systemd/systemd-socket-proxyd", "/usr/lib/systemd/systemd-socket-proxyd"].find((p) => Fs.existsSync(p))
  const loads = {
    small: (port: number) => wrk(`http://127.0.0.1:${port}/`, 32),
    fresh: (port: number) => wrk(`http://127.0.0.1:${port}/`, 32, ["-H", "Connection: close"]),
    large: (port: number) => wrk(`http://127.0.0.1:${port}/big`, 4)
  }
  type Load = keyof typeof loads
  const names = Object.keys(loads) as Array<Load>
  const appPort = await freePort()
  const direct = start(process.execPath, [app, "--listen", String(appPort)])
  await direct.waitFor(/ready/)
  await timedGet({ host: "127.0.0.1", port: appPort })
  const viaDirect = Object.fromEntries(names.map((name) => [name, loads[name](appPort)])) as Record<Load, ReturnType<typeof wrk>>

  const soadPort = await freePort()
  const soad = start(command, ["-l", `127.0.0.1:${soadPort}`, "--upstream", `127.0.0.1:${appPort}`, "-t", "300", "--", "sleep", "3600"])
  await soad.waitFor(/listening on/)
  await timedGet({ host: "127.0.0.1", port: soadPort }) // starts the (stand-in) app; the real one already listens
  const proxydPort = await freePort()
  const launcher = proxyd !== undefined && installed("systemd-socket-activate")
    ? start("systemd-socket-activate", ["-l", `127.0.0.1:${proxydPort}`, proxyd, `127.0.0.1:${appPort}`])
    : undefined
  if (launcher !== undefined) {
    await sleep(300)
    await timedGet({ host: "127.0.0.1", port: proxydPort })
  }
  const soadRuns = new Map<Load, Array<ReturnType<typeof wrk>>>(names.map((name) => [name, []]))
  const proxydRuns = new Map<Load, Array<ReturnType<typeof wrk>>>(names.map((name) => [name, []]))
  for (let round = 0; round < proxyRounds; round++) {
    for (const name of names) {
      soadRuns.get(name)!.push(loads[name](soadPort))
      if (launcher !== undefined) proxydRuns.get(name)!.push(loads[name](proxydPort))
    }
  }
  const viaSoad = Object.fromEntries(names.map((name) => [name, medianOf(soadRuns.get(name)!)])) as Record<Load, ReturnType<typeof wrk>>
  const viaProxyd = launcher === undefined
    ? undefined
    : Object.fromEntries(names.map((name) => [name, medianOf(proxydRuns.get(name)!)])) as Record<Load, ReturnType<typeof wrk>>
  if (launcher !== undefined) await stop(launcher)
  await stop(soad)

  // Memory per relayed connection: 2000 idle connections held open through a fresh soad, once it has settled
  // (its memory-reducing GC runs 1 s after it is ready; measured after wrk, the garbage of the runs above made the
  // figure noise, even negative).
  const fresh = start(command, ["-l", `127.0.0.1:${soadPort}`, "--upstream", `127.0.0.1:${appPort}`, "-t", "300", "--", "sleep", "3600"])
  await fresh.waitFor(/listening on/)
  await timedGet({ host: "127.0.0.1", port: soadPort })
  await sleep(2500)
  const pid = fresh.child.pid!
  const rssBefore = memory(pid).rss
  const clients: Array<Net.Socket> = []
  await Promise.all(Array.from({ length: 2000 }, () =>
    new Promise<void>((resolve) => {
      const client = Net.connect(soadPort, "127.0.0.1", () => resolve())
      client.on("error", () => resolve())
      clients.push(client)
    })
  ))
  await sleep(1000)
  const perConnection = ((memory(pid).rss - rssBefore) * 1024 * 1024) / 2000
  for (const client of clients) client.destroy()
  await stop(fresh)
  await stop(direct)
  return { viaDirect, viaSoad, viaProxyd, perConnection }
}

/**
 * From the last request's connect() to soad's "stopping" line, against -t 2: after a lone request (its time is
 * counted exactly), and after a burst of 20 at once (counting is quiet for 100 ms after the first one's signal, so
 * the others are seen together when that ends: the stop may be up to 100 ms later).
 */
const stopPrecision = async () => {
  const socketPath = Path.join(work, "precision.sock")
  const soad = start(command, ["-s", socketPath, "-t", "2", "--", process.execPath, app])
  await soad.waitFor(/listening on/)
  const late: Array<number> = []
  const lateAfterBurst: Array<number> = []
  let stops = 0
  for (let i = 1; i <= Math.min(runs, 5); i++) {
    for (const burst of [1, 20]) {
      await timedGet({ socketPath }) // starts the app
      await sleep(300)
      let last = 0 // the connect() of the last request: the activity soad sees
      await Promise.all(Array.from({ length: burst }, () => {
        last = Math.max(last, performance.now())
        return timedGet({ socketPath })
      }))
      const stopping = await soad.waitFor(/stopping the app/, ++stops)
      ;(burst === 1 ? late : lateAfterBurst).push(stopping.at - last - 2000)
      await soad.waitFor(/app exited/, stops)
    }
  }
  await stop(soad)
  return {
    median: median(late),
    max: Math.max(...late),
    burstMedian: median(lateAfterBurst),
    burstMax: Math.max(...lateAfterBurst)
  }
}

const logFile = (path: string) => {
  let offset = 0
  let rest = ""
  const own: Array<string> = []
  const look = () => {
    const fd = Fs.openSync(path, "r")
    try {
      const buffer = Buffer.alloc(1 << 20)
      for (;;) {
        const n = Fs.readSync(fd, buffer, 0, buffer.length, offset)
        if (n === 0) break
        offset += n
        const lines = (rest + buffer.toString("utf8", 0, n)).split("\n")
        rest = lines.pop()!
        for (const line of lines) if (!line.startsWith("[")) own.push(line)
      }
    } finally {
      Fs.closeSync(fd)
    }
  }
  const waitFor = async (pattern: RegExp, count = 1, timeoutMs = 20_000) => {
    const end = Date.now() + timeoutMs
    for (;;) {
      look()
      if (own.filter((line) => pattern.test(line)).length >= count) return
      if (Date.now() > end) throw new Error(`no ${count}× ${pattern} in ${path}:\n${own.join("\n")}`)
      await sleep(20)
    }
  }
  return { own, look, waitFor }
}

/**
 * A neighbour that floods: one soad with three services: `flood` (`yes`, as fast as a pipe takes it), `bursts`
 * (`yes | head -n 50000` every second) and `quiet` (the benchmark app, -t 0.2). soad's stderr is a file (as
 * under a journal, nothing slows it down). soad's CPU over 10 s with each flooding app running alone, and the quiet
 * service's cold start and `soad status` with no flood and during the `yes` flood.
 */
const flood = async () => {
  const quietPath = Path.join(work, "flood-quiet.sock")
  const toml = [
    `[services.flood]`,
    `listen = [${JSON.stringify(Path.join(work, "flood-flood.sock"))}]`,
    `command = ["yes"]`,
    `time-until-stop = 600`,
    `start-timeout = 600`,
    `[services.bursts]`,
    `listen = [${JSON.stringify(Path.join(work, "flood-bursts.sock"))}]`,
    `command = ["sh", "-c", "while :; do yes | head -n 50000; sleep 1; done"]`,
    `time-until-stop = 600`,
    `start-timeout = 600`,
    `[services.quiet]`,
    `listen = [${JSON.stringify(quietPath)}]`,
    `command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(app)}]`,
    `time-until-stop = 0.2`,
    `min-uptime = 0`
  ]
  const file = Path.join(work, "flood.toml")
  Fs.writeFileSync(file, toml.join("\n") + "\n")
  const control = Path.join(work, "flood-control.sock")
  const logPath = Path.join(work, "flood.log")
  const log = Fs.openSync(logPath, "w")
  const child = ChildProcess.spawn(command, ["-c", file, "--control", control], { stdio: ["ignore", "ignore", log], env })
  Fs.closeSync(log)
  children.add(child)
  child.on("exit", () => children.delete(child))
  const lines = logFile(logPath)
  await lines.waitFor(/listening on/, 3)
  await waitForFile(control)
  const pid = child.pid!
  const soadCommand = (...args: ReadonlyArray<string>) => timeRun(command, [...args, "--control", control])
  let exits = 0
  /** The quiet service: cold starts (each waits for the app's exit first) and `soad status`, medians. */
  const quiet = async () => {
    const cold: Array<number> = []
    const status: Array<number> = []
    for (let i = 0; i < runs; i++) {
      cold.push(await timedGet({ socketPath: quietPath }))
      await lines.waitFor(/\[quiet\] app exited/, ++exits)
      status.push(soadCommand("status"))
    }
    return { cold: median(cold), status: median(status) }
  }
  /** soad's CPU (ms) over 10 s, from 2 s after `service` was woken; then it is put to sleep. */
  const cpuWith = async (service: string) => {
    soadCommand("wake", service)
    await sleep(2_000)
    const before = procStat(pid).ticks
    await sleep(10_000)
    const cpu = (procStat(pid).ticks - before) * 10
    return cpu
  }
  const calm = await quiet()
  const yes = await cpuWith("flood")
  const during = await quiet()
  soadCommand("sleep", "flood")
  const bursts = await cpuWith("bursts")
  soadCommand("sleep", "bursts")
  lines.look()
  const told = lines.own.filter((line) => / WARN \[(flood|bursts)\]/.test(line)).length
  child.kill("SIGTERM")
  await new Promise((resolve) => child.once("exit", resolve))
  return { calm, during, yes, bursts, told }
}

const reportFlood = async () => {
  console.error("a neighbour that floods its output")
  const f = await flood()
  row("soad's CPU over 10 s, one service running `yes`", `${f.yes} ms`, "a core is 10000 ms")
  row("soad's CPU over 10 s, one service writing 50,000-line bursts every second", `${f.bursts} ms`)
  row("a quiet service's cold start while a neighbour runs `yes`", ms(f.during.cold), `no flood: ${ms(f.calm.cold)}`)
  row("`soad status` while a neighbour runs `yes`", ms(f.during.status, 0), `no flood: ${ms(f.calm.status, 0)}`)
  row("soad's warnings about the two flooding apps over ~25 s", String(f.told))
}

/**
 * The notify datagram parser on inputs of its size limit (4096 characters), shaped to hurt: one long line, only
 * newlines, only `=`, many short lines, a huge STATUS=, NULs, U+FFFD (what invalid UTF-8 becomes), a long number.
 * Microseconds per datagram, the median of 20 rounds of 2,000 parses each; the slowest shape.
 */
const notifyParser = () => {
  const n = NotifyMessage.maxBytes
  const shapes: Record<string, string> = {
    "one line": "x".repeat(n),
    "newlines": "\n".repeat(n),
    "equals": "=".repeat(n),
    "READY=1 lines": "READY=1\n".repeat(n / 8),
    "STATUS=": "STATUS=" + "s".repeat(n - 7),
    "NUL": "\0".repeat(n),
    "U+FFFD": "\uFFFD".repeat(n),
    "EXTEND_TIMEOUT_USEC=": "EXTEND_TIMEOUT_USEC=" + "9".repeat(n - 20),
    "a=b lines": "a=b\n".repeat(n / 4)
  }
  let worst = { shape: "", us: 0 }
  for (const [shape, text] of Object.entries(shapes)) {
    const rounds: Array<number> = []
    for (let round = 0; round < 20; round++) {
      const t0 = performance.now()
      for (let i = 0; i < 2000; i++) NotifyMessage.parse(text)
      rounds.push(((performance.now() - t0) * 1000) / 2000)
    }
    const us = median(rounds)
    if (us > worst.us) worst = { shape, us }
  }
  return worst
}

/**
 * A stranger floods an app's notify socket (test/fixtures/notify-flood.py, in a session of its own) while the app
 * (test/fixtures/notify-app.py) sends READY=1 one second after the flood began, as sd_notify does (a blocking
 * sendto): how long READY=1 took to get through, soad's CPU over 10 s of the flood once the app is ready, and how
 * many lines soad wrote about the flood meanwhile.
 */
const notifyFlood = async () => {
  const socketPath = Path.join(work, "notify.sock")
  const info = Path.join(work, "notify-info")
  const started = Path.join(work, "notify-flood-started")
  const logPath = Path.join(work, "notify.log")
  const log = Fs.openSync(logPath, "w")
  const fixture = (name: string) => Path.join(root, "test", "fixtures", name)
  const child = ChildProcess.spawn(
    command,
    ["-s", socketPath, "--ready", "notify", "--start-timeout", "120", "--", "python3", fixture("notify-app.py")],
    { stdio: ["ignore", "ignore", log], env: { ...env, INFO_FILE: info, READY_DELAY: "1", READY_AFTER: started } }
  )
  Fs.closeSync(log)
  children.add(child)
  child.on("exit", () => children.delete(child))
  const lines = logFile(logPath)
  await lines.waitFor(/listening on/)
  const client = Net.connect(socketPath).on("error", () => {})
  await waitForFile(info)
  await lines.waitFor(/app started/)
  let notifySocket = ""
  while (notifySocket === "") {
    notifySocket = Fs.readFileSync(info, "utf8").split("\n")[1] ?? ""
    await sleep(10)
  }
  const flooder = ChildProcess.spawn("setsid", ["python3", fixture("notify-flood.py"), notifySocket, started], { stdio: "ignore" })
  children.add(flooder)
  await waitForFile(started)
  const floodAt = Date.now()
  await lines.waitFor(/the app accepts/, 1, 60_000)
  const readyAfter = Date.now() - floodAt - 1000 // the app sends READY=1 one second after the flood began
  await sleep(1000)
  const before = procStat(child.pid!).ticks
  lines.look()
  const toldBefore = lines.own.filter((line) => /notify datagram/.test(line)).length
  await sleep(10_000)
  const cpu = (procStat(child.pid!).ticks - before) * 10
  lines.look()
  const told = lines.own.filter((line) => /notify datagram/.test(line)).length - toldBefore
  const counted = lines.own.map((line) => /ignored (\d+) notify datagrams/.exec(line)).reduce((sum, m) => sum + (m === null ? 0 : Number(m[1])), 0)
  flooder.kill("SIGKILL")
  client.destroy()
  child.kill("SIGTERM")
  await new Promise((resolve) => child.once("exit", resolve))
  return { readyAfter, cpu, told, counted }
}

const reportNotify = async () => {
  console.error("a stranger floods an app's notify socket")
  const parser = notifyParser()
  row("notify datagram parser, 4096 characters, slowest shape", `${parser.us.toFixed(1)} µs`, parser.shape)
  const f = await notifyFlood()
  row("the app's READY=1 under a notify flood: from its sendto to soad's ready", ms(f.readyAfter, 0))
  row("soad's CPU over 10 s of a notify flood (the app ready)", `${f.cpu} ms`, `${f.told} log lines about it; ${f.counted} datagrams ignored in all`)
}

/** A quiet service's cold start and `soad status` while its neighbours are attacked or misbehave (neighbours.ts). */
const reportNeighbours = async () => {
  console.error("a quiet service and its noisy neighbours")
  const figures = await Neighbours.neighbours({
    command, work, root, app, env, runs, children, sleep, median, timedGet, timeRun, waitForFile, freePort, logFile
  })
  const calm = figures[0]!
  row("a quiet service's cold start / `soad status`, no pressure", `${ms(calm.cold)} / ${ms(calm.status, 0)}`, `${calm.failed} failed`)
  for (const f of figures.slice(1)) {
    row(
      `the same while ${f.pressure}`,
      `${ms(f.cold)} / ${ms(f.status, 0)}`,
      `${(f.cold / calm.cold).toFixed(2)}× / ${(f.status / calm.status).toFixed(2)}× quiet; ${f.failed} failed`
    )
  }
}

const reportPage = async () => {
  console.error("the status page of --metrics with 1,000 services")
  const f = await Page.page({ command, work, app, env, children, median, freePort, logFile })
  row(
    `status page (GET /), ${f.services.toLocaleString("en")} services, 10 running`,
    `${ms(f.page)}, ${Math.round(f.bytes / 1024)} KiB`,
    `soad's CPU ${ms(f.cpu)} a page (test/bench/page.ts); GET /metrics ${ms(f.metrics)}`
  )
  row(
    `soad's RSS, ${f.services.toLocaleString("en")} services: before the first GET / 8 s after 35 pages and 30 scrapes`,
    `${f.rssBefore.toFixed(1)} MB / ${f.rssAfter.toFixed(1)} MB`,
    "the garbage of an answer is given back 5 s after it"
  )
}

/** One control request's round trip from this (already running) process: soad's own share of a control command. */
const controlRoundTrip = (path: string, body: object): Promise<number> =>
  new Promise((resolve, reject) => {
    const t0 = performance.now()
    const socket = Net.connect(path)
    socket.on("connect", () => socket.write(JSON.stringify(body) + "\n"))
    socket.resume()
    socket.on("end", () => resolve(performance.now() - t0))
    socket.on("error", reject)
  })

/**
 * The control commands as people type them: `soad --version`, `--help`, and `soad status` of a soad with one
 * service and of one with 1,000 (the folded table, one service by name, `--json`), and `wake`, `sleep` and `logs`
 * of one of the 1,000, each with no flag (found in SOAD_CONTROL_DIR), beside `node -e 0` in the same rounds; and
 * soad's own share of a status of 1,000 (a request's round trip from this process).
 */
const controlCommands = async () => {
  const ctl = Path.join(work, "ctl")
  const one = Path.join(ctl, "one")
  const many = Path.join(ctl, "many")
  const single = start(command, ["-s", Path.join(work, "ctl-one.sock"), "--", process.execPath, app], { SOAD_CONTROL_DIR: one })
  const lines: Array<string> = [`[defaults]`, `command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(app)}]`]
  for (let i = 0; i < 1000; i++) lines.push(`[services.s${i}]`, `listen = [${JSON.stringify(Path.join(work, `ctl-${i}.sock`))}]`)
  const file = Path.join(work, "ctl.toml")
  Fs.writeFileSync(file, lines.join("\n") + "\n")
  const thousand = start(command, ["-c", file, "--log-level", "warn"], { SOAD_CONTROL_DIR: many })
  const socketIn = async (dir: string) => {
    for (;;) {
      const found = Fs.existsSync(dir) ? Fs.readdirSync(dir).filter((name) => name.endsWith(".sock")) : []
      if (found.length > 0) return Path.join(dir, found[0]!)
      await sleep(20)
    }
  }
  await socketIn(one)
  const manySocket = await socketIn(many)
  await sleep(2000) // past start-up's GC
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>, Record<string, string>]> = [
    ["node -e 0", ["-e", "0"], {}],
    ["--version", ["--version"], {}],
    ["--help", ["--help"], {}],
    ["status, 1 service", ["status"], { SOAD_CONTROL_DIR: one }],
    ["status, 1,000 services", ["status"], { SOAD_CONTROL_DIR: many }],
    ["status NAME, 1,000 services", ["status", "s500"], { SOAD_CONTROL_DIR: many }],
    ["status --json, 1,000 services", ["status", "--json"], { SOAD_CONTROL_DIR: many }],
    // s1's app is started by the first wake and runs on (the later ones answer "already running"); s2's never runs
    ["wake NAME, 1,000 services", ["wake", "s1"], { SOAD_CONTROL_DIR: many }],
    ["sleep NAME (not running), 1,000 services", ["sleep", "s2"], { SOAD_CONTROL_DIR: many }],
    ["logs -n 10 NAME, 1,000 services", ["logs", "-n", "10", "s1"], { SOAD_CONTROL_DIR: many }]
  ]
  const times = new Map<string, Array<number>>(cases.map(([name]) => [name, []]))
  const server: Array<number> = []
  for (let i = 0; i < runs; i++) {
    for (const [name, args, more] of cases) times.get(name)!.push(timeRun(name === "node -e 0" ? process.execPath : command, args, more))
    server.push(await controlRoundTrip(manySocket, { command: "status" }))
  }
  await stop(single)
  await stop(thousand)
  return { times: new Map([...times].map(([name, values]) => [name, median(values)])), server: median(server) }
}

const reportControl = async () => {
  console.error("control commands: soad --version, --help, status (1 and 1,000 services), wake, sleep, logs against node -e 0")
  const { server, times } = await controlCommands()
  const node = times.get("node -e 0")!
  for (const [name, value] of times) {
    if (name === "node -e 0") continue
    row(`soad ${name}`, ms(value, 0), `node -e 0: ${ms(node, 0)} (+${ms(value - node, 0)})`)
  }
  row("soad's answer to status, 1,000 services", ms(server), "one request's round trip, from a client already running")
}

/** Cold activation: soad against systemd-socket-activate (Node app) and against a minimal C activator (C app). */
const reportCold = async (soad: { readonly total: number; readonly spawn: number }) => {
  const systemd = installed("systemd-socket-activate") ? await coldSystemd() : undefined
  const warm = await warmDirect()
  row("cold activation, soad (connect to full response)", ms(soad.total), `pending connection to app spawned: ${ms(soad.spawn)}`)
  if (systemd !== undefined) {
    row("cold activation, systemd-socket-activate", ms(systemd), `soad/systemd: ${(soad.total / systemd).toFixed(2)}`)
  } else row("cold activation, systemd-socket-activate", "not installed")
  row("the same request, app already running", ms(warm))
  const tinyApp = compile("tiny-app")
  const activator = compile("min-activator")
  if (tinyApp === undefined || activator === undefined) return row("cold activation, tiny C app", "no C compiler")
  const tiny = await coldTiny(tinyApp, activator)
  row("cold activation, tiny C app: soad", ms(tiny.soad, 2), `soad/minimal: ${(tiny.soad / tiny.floor).toFixed(2)}`)
  row("cold activation, tiny C app: a minimal C activator (poll, fork, exec)", ms(tiny.floor, 2), "test/bench/min-activator.c")
}

const reportRunning = async () => {
  console.error("app running: soad's socket vs. the app started directly")
  const running = await runningComparison()
  row(
    "latency, new connection per request (p50 / p99)",
    `${ms(running.viaSoad.p50, 2)} / ${ms(running.viaSoad.p99, 2)} via soad`,
    `${ms(running.viaDirect.p50, 2)} / ${ms(running.viaDirect.p99, 2)} direct`
  )
  if (running.viaSoad.keepAlive !== undefined) {
    row(
      "requests/s, keep-alive (wrk, 32 connections)",
      `${running.viaSoad.keepAlive.toFixed(0)} via soad`,
      `${running.viaDirect.keepAlive!.toFixed(0)} direct`
    )
    row(
      "requests/s, new connection per request",
      `${running.viaSoad.close!.toFixed(0)} via soad`,
      `${running.viaDirect.close!.toFixed(0)} direct`
    )
  } else row("requests/s", "wrk not installed")
}

const reportIdle = (idleFigures: Awaited<ReturnType<typeof idle>>) => {
  const mb = (m: { readonly rss: number; readonly pss: number }) => `${m.rss.toFixed(1)} MB / ${m.pss.toFixed(1)} MB`
  row("soad's memory while idle, 1 service, 5 s after listening (RSS / PSS)", mb(idleFigures.at5.soad), `an empty Node process: ${mb(idleFigures.at5.empty)}`)
  row("the same, 15 s after listening", mb(idleFigures.at15.soad), `an empty Node process: ${mb(idleFigures.at15.empty)}`)
  row(
    "soad's private memory (pages no other process shares), 5 s after listening",
    `${idleFigures.at5.soad.private.toFixed(1)} MB`,
    `an empty Node process: ${idleFigures.at5.empty.private.toFixed(1)} MB`
  )
  row(
    "the stack's floor: a minimal Effect program (Effect.never), bundled, soad's V8 flags (RSS / private)",
    `${idleFigures.at5.effect.rss.toFixed(1)} MB / ${idleFigures.at5.effect.private.toFixed(1)} MB`,
    "test/bench/floor/effect.ts, measured with soad"
  )
  row(
    "the same, evaluated as soad evaluates its bundle (process.stdout and performance hidden from Effect)",
    `${idleFigures.at5.hidden.rss.toFixed(1)} MB / ${idleFigures.at5.hidden.private.toFixed(1)} MB`,
    "test/bench/floor/effect.ts: Effect's logger and clock then make neither, as in soad"
  )
  row(
    "the same with @effect/cli parsing one option (and @effect/platform-node's context)",
    `${idleFigures.at5.cli.rss.toFixed(1)} MB / ${idleFigures.at5.cli.private.toFixed(1)} MB`,
    "test/bench/floor/cli.ts, measured with soad"
  )
  row("soad's start-up to listening", ms(idleFigures.startup, 0), `node -e 0: ${ms(idleFigures.node, 0)}`)
  row("the same without its code cache (SOAD_CODE_CACHE=0: a first start, a dist/ soad may not write)", ms(idleFigures.uncachedStartup, 0), `node -e 0: ${ms(idleFigures.node, 0)}`)
  row("soad --version", ms(idleFigures.version, 0), `node -e 0: ${ms(idleFigures.node, 0)}`)
  row(
    "soad's CPU over 10 s, no app running (from 15 s after start)",
    `${idleFigures.idleCpu} ms`,
    `${idleFigures.idleSwitches} context switches, all threads`
  )
  row("soad's CPU over 10 s, one request every 100 ms", `${idleFigures.busyCpu} ms`)
}

const reportMany = async (soad: { readonly total: number }, idleFigures: Awaited<ReturnType<typeof idle>>) => {
  console.error(`many services`)
  const many = await manyServices()
  row(
    `soad's memory while idle, ${many.count} services, 5 s after listening (RSS / PSS)`,
    `${many.mem.rss.toFixed(1)} MB / ${many.mem.pss.toFixed(1)} MB`,
    `${(((many.mem.rss - idleFigures.at5.soad.rss) * 1024) / (many.count - 1)).toFixed(0)} KB RSS per extra service`
  )
  row(`soad's start-up to listening, ${many.count} services`, ms(many.startup, 0))
  row(`cold activation with ${many.count} services`, ms(many.cold), `with 1 service: ${ms(soad.total)}`)
}

const reportProxy = async () => {
  console.error("proxy mode: soad, systemd-socket-proxyd, direct")
  const proxy = await proxyComparison()
  const fmt = (m: ReturnType<typeof wrk>) => `${m.rps.toFixed(0)} req/s, p50 ${ms(m.p50, 2)}, p99 ${ms(m.p99, 2)}`
  const ref = proxy.viaProxyd
  row("proxy, keep-alive (wrk, 32 connections): soad", fmt(proxy.viaSoad.small), ref ? `soad/proxyd ${(proxy.viaSoad.small.rps / ref.small.rps).toFixed(2)}` : "")
  if (ref) row("proxy, keep-alive: systemd-socket-proxyd", fmt(ref.small))
  row("proxy, keep-alive: app directly", fmt(proxy.viaDirect.small))
  row("proxy, new connection per request: soad", fmt(proxy.viaSoad.fresh), ref ? `soad/proxyd ${(proxy.viaSoad.fresh.rps / ref.fresh.rps).toFixed(2)}` : "")
  if (ref) row("proxy, new connection per request: systemd-socket-proxyd", fmt(ref.fresh))
  row("proxy, new connection per request: app directly", fmt(proxy.viaDirect.fresh))
  row("proxy, 16 MiB responses (4 connections): soad", `${proxy.viaSoad.large.mbps.toFixed(0)} MB/s`, ref ? `soad/proxyd ${(proxy.viaSoad.large.mbps / ref.large.mbps).toFixed(2)}` : "")
  if (ref) row("proxy, 16 MiB responses: systemd-socket-proxyd", `${ref.large.mbps.toFixed(0)} MB/s`)
  row("proxy, 16 MiB responses: app directly", `${proxy.viaDirect.large.mbps.toFixed(0)} MB/s`)
  row("proxy, soad's memory per open relayed connection", `${(proxy.perConnection / 1024).toFixed(1)} KB`, "2000 idle connections")
}

/** Rounds of the accept comparison: soad and systemd-socket-activate take turns; each figure is their median. */
const acceptRounds = 3

/**
 * A process per connection: one client after another, each connection gets its own instance of the inetd app, via
 * soad --accept and via systemd-socket-activate --accept --inetd, alternating round after round (both kept running),
 * and soad's CPU per connection. soad runs with --max-accept-rate above what one client can reach: the default
 * (200 per 2 s, as systemd's TriggerLimitBurst= for Accept=yes) paces a client that keeps connecting, and that
 * pacing is no cost of a connection; systemd-socket-activate has no such limit.
 */
const acceptComparison = async (inetdApp: string) => {
  const connections = runs * 40
  const soadPath = Path.join(work, "accept-soad.sock")
  const soad = start(command, ["-s", soadPath, "--accept", "--max-accept-rate", "100000/1s", "--log-level", "warn", "--", inetdApp])
  const systemdPath = Path.join(work, "accept-systemd.sock")
  const systemd = installed("systemd-socket-activate")
    ? start("systemd-socket-activate", ["-l", systemdPath, "--accept", "--inetd", inetdApp])
    : undefined
  await waitForFile(soadPath)
  if (systemd !== undefined) await waitForFile(systemdPath)
  await sleep(300)
  const round = async (socketPath: string) => {
    const times: Array<number> = []
    const began = performance.now()
    for (let i = 0; i < connections; i++) times.push(await timedGet({ socketPath }))
    const elapsed = performance.now() - began
    return { p50: median(times), p99: percentile(times, 99), rate: connections / (elapsed / 1000) }
  }
  const viaSoad: Array<Awaited<ReturnType<typeof round>>> = []
  const viaSystemd: Array<Awaited<ReturnType<typeof round>>> = []
  const cpu: Array<number> = []
  for (let i = 0; i < acceptRounds; i++) {
    const before = cpuMillis([soad.child.pid!])
    viaSoad.push(await round(soadPath))
    cpu.push((cpuMillis([soad.child.pid!]) - before) / connections)
    if (systemd !== undefined) viaSystemd.push(await round(systemdPath))
  }
  if (systemd !== undefined) await stop(systemd)
  await stop(soad)
  const summary = (rounds: ReadonlyArray<{ readonly p50: number; readonly p99: number; readonly rate: number }>) => ({
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    rate: median(rounds.map((r) => r.rate))
  })
  return {
    connections,
    soad: summary(viaSoad),
    systemd: systemd === undefined ? undefined : summary(viaSystemd),
    ratios: systemd === undefined ? [] : viaSoad.map((r, i) => r.rate / viaSystemd[i]!.rate),
    cpu: median(cpu)
  }
}

const reportAccept = async () => {
  console.error("a process per connection (--accept)")
  const inetdApp = compile("inetd-app")
  if (inetdApp === undefined) return row("a process per connection", "no C compiler")
  const { connections, cpu, ratios, soad, systemd } = await acceptComparison(inetdApp)
  const figure = (f: { readonly p50: number; readonly p99: number; readonly rate: number }) =>
    `${f.rate.toFixed(0)} conn/s, p50 ${ms(f.p50, 2)}, p99 ${ms(f.p99, 2)}`
  row(
    "a process per connection, one client after another: soad --accept",
    figure(soad),
    systemd === undefined
      ? `${connections} connections`
      : `soad/systemd ${(soad.rate / systemd.rate).toFixed(2)} (rounds ${ratios.map((r) => r.toFixed(2)).join(", ")})`
  )
  if (systemd !== undefined) row("a process per connection: systemd-socket-activate --accept --inetd", figure(systemd))
  else row("a process per connection: systemd-socket-activate --accept --inetd", "not installed")
  row("the same: soad's CPU per connection", ms(cpu, 2), `median of ${acceptRounds} rounds of ${connections}`)
}

const reportPrecision = async () => {
  console.error("idle-stop precision")
  const precision = await stopPrecision()
  row(
    "idle stop with -t 2: last connection to the stop, minus 2 s (median / max)",
    `${ms(precision.median)} / ${ms(precision.max)}`,
    "the original checks every 5 s"
  )
  row(
    "the same after a burst of 20 connections at once (median / max)",
    `${ms(precision.burstMedian)} / ${ms(precision.burstMax)}`,
    "a listener is quiet for 100 ms after a connection's signal"
  )
}

/** soad's V8 flags, as its launcher passes them (the `exec "$node" --…` line of dist/soad). */
const launcherFlags = (): Array<string> =>
  (Fs.readFileSync(command, "utf8").split("\n").map((line) => line.trim()).find((line) => line.startsWith("exec ") && line.includes("bin.cjs")) ?? "")
    .split(" ")
    .filter((word) => word.startsWith("--"))

/** The parsers' figures, measured in a child run with soad's V8 flags (this bundle again, BENCH_PARSERS=child). */
const reportParsers = () => {
  const flags = launcherFlags()
  console.error(`parsers of outside bytes, CPU per input at its size limit, under node ${flags.join(" ")}`)
  const child = ChildProcess.spawnSync(process.execPath, [...flags, process.argv[1]!], {
    env: { ...env, BENCH_PARSERS: "child" },
    encoding: "utf8",
    maxBuffer: 1 << 24
  })
  if (child.status !== 0) throw new Error(`the parsers' child failed: ${child.stderr}`)
  const report = JSON.parse(child.stdout) as Parsers.Report
  const us = (value: number) => `${(value / 1000).toFixed(3)} ms`
  for (const f of report.figures) console.error(`    ${f.parser}: ${f.input} (${f.bytes} B): ${us(f.median)} (least ${us(f.min)})`)
  const parsers = [...new Set(report.figures.map((f) => f.parser))]
  for (const parser of parsers) {
    const mine = report.figures.filter((f) => f.parser === parser)
    const worst = mine.reduce((a, b) => (b.median > a.median ? b : a))
    const note = parser.startsWith("HTTP head")
      ? `the first classifier on the issue's head: ${us(report.firstClassifier)}; `
      : ""
    row(
      `CPU of one input at its size limit, worst of ${mine.length}: ${parser}`,
      us(worst.median),
      `${note}worst: ${worst.input} (${worst.bytes} B); goal 1 ms; ${flags.join(" ")}`
    )
  }
}

/** CPU time of every thread of a process so far, in milliseconds (schedstat: nanoseconds, not 10 ms ticks). */
const cpuMs = (pid: number): number => {
  let total = 0
  for (const task of Fs.readdirSync(`/proc/${pid}/task`)) {
    total += Number(Fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]) / 1e6
  }
  return total
}

/** soad's CPU over `during` (which returns once it is over), per second of it. */
const cpuPerSecond = async (pid: number, during: () => Promise<unknown>): Promise<number> => {
  const cpu0 = cpuMs(pid)
  const t0 = performance.now()
  await during()
  return (cpuMs(pid) - cpu0) / ((performance.now() - t0) / 1000)
}

/** How soad looks at sockets: asking the kernel (sock_diag), or reading /proc/net as before it did. */
type Lookup = "sock_diag" | "proc"
const lookupEnv = (lookup: Lookup): Record<string, string> => lookup === "proc" ? { SOAD_SOCK_DIAG: "0" } : {}

/** The three moments soad looks at sockets, each measured as soad's CPU per second of it. */
const busyHostRound = async (lookup: Lookup) => {
  const plainApp = Path.join(root, "test", "fixtures", "plain-app.mjs")
  const testApp = Path.join(root, "test", "fixtures", "app.mjs")
  // A proxied app that binds its port 2 s after it starts: soad looks for its listener until then.
  const upstream = await freePort()
  const socketPath = Path.join(work, `busy-proxy-${lookup}.sock`)
  const proxy = start(command, ["-s", socketPath, "--upstream", `127.0.0.1:${upstream}`, "-t", "300", "--", process.execPath, plainApp, "--port", String(upstream), "--delay", "2000"], lookupEnv(lookup))
  await proxy.waitFor(/listening on/)
  await sleep(500)
  const proxyStart = await cpuPerSecond(proxy.child.pid!, () => timedGet({ socketPath }))
  await stop(proxy)
  // A hand-off app that accepts 2 s after it starts: soad looks whether it has accepted (pending, open) till then.
  const port = await freePort()
  const handOff = start(command, ["-l", `127.0.0.1:${port}`, "-t", "3", "--", process.execPath, testApp, "--start-delay", "2000"], lookupEnv(lookup))
  await handOff.waitFor(/listening on/)
  await sleep(500)
  const pid = handOff.child.pid!
  const handOffStart = await cpuPerSecond(pid, () => timedGet({ host: "127.0.0.1", port }))
  // Then a request the app holds 7 s: from the deadline (-t 3) until it closes, soad looks every second whether
  // that accepted connection is still open; measured from its first look to the close.
  const held = timedGet({ host: "127.0.0.1", port }, "/?delay=7000")
  await handOff.waitFor(/still open/)
  const idleLooks = await cpuPerSecond(pid, () => held)
  await stop(handOff)
  return { proxyStart, handOffStart, idleLooks }
}

/** The busy-host figures: each moment with 0 and with 20,000 host TCP sockets, for both ways of looking. */
const busyHost = async () => {
  const hostCount = 20_000
  const rounds = Math.min(runs, 3)
  type Figures = Awaited<ReturnType<typeof busyHostRound>>
  const measure = async () => {
    const results: Record<Lookup, Array<Figures>> = { sock_diag: [], proc: [] }
    for (let i = 0; i < rounds; i++) {
      for (const lookup of ["sock_diag", "proc"] as const) results[lookup].push(await busyHostRound(lookup))
    }
    const med = (lookup: Lookup, key: keyof Figures) => median(results[lookup].map((r) => r[key]))
    return (key: keyof Figures) => ({ diag: med("sock_diag", key), proc: med("proc", key) })
  }
  const quiet = await measure()
  const hostDir = Fs.mkdtempSync(Path.join(work, "host-"))
  const host = await hostSockets({ root, dir: hostDir, tcp: hostCount })
  try {
    const busy = await measure()
    return { quiet, busy, held: host.tcp, rounds }
  } finally {
    await host.stop()
  }
}

const reportScale = async () => {
  console.error("1, 100 and 1,000 services in one soad")
  const tinyApp = compile("tiny-app")
  if (tinyApp !== undefined) {
    const sizes: Array<Scale.Figures> = []
    for (const count of [1, 100, 1000]) {
      sizes.push(await Scale.scale({ command, work, env, runs, children, sleep, median, timeRun, rss: (pid) => memory(pid).rss }, tinyApp, count))
    }
    const one = sizes[0]!
    for (const f of sizes) {
      const perService = f.services === 1 ? "" : `; ${(((f.rss - one.rss) * 1024) / (f.services - 1)).toFixed(0)} KB RSS a service beyond one`
      row(`${f.services.toLocaleString("en")} service${f.services === 1 ? "" : "s"}: start-up to every listener / RSS 5 s after`, `${ms(f.startup, 0)} / ${f.rss.toFixed(1)} MB`, `tiny C apps, UNIX listeners${perService}`)
      row(`${f.services.toLocaleString("en")} service${f.services === 1 ? "" : "s"}: soad status / a reload changing one service`, `${ms(f.status, 0)} / ${ms(f.reloadOne, 0)}`, "status: the whole command")
      row(`${f.services.toLocaleString("en")} service${f.services === 1 ? "" : "s"}: 30 SIGHUPs 50 ms apart`, `quiet ${ms(f.storm, 0)} after the last`, `${f.stormReloads} reloads`)
    }
  }
  console.error("a busy host: soad's CPU with 0 and with 20,000 other TCP sockets")
  const { quiet, busy, held, rounds } = await busyHost()
  const perSecond = (value: number) => `${value.toFixed(1)} ms/s`
  const figure = (key: "proxyStart" | "handOffStart" | "idleLooks", what: string) => {
    const q = quiet(key)
    const b = busy(key)
    row(
      `busy host: soad's CPU ${what} (0 / ${held} host TCP sockets)`,
      `${perSecond(q.diag)} / ${perSecond(b.diag)}`,
      `reading /proc/net instead (SOAD_SOCK_DIAG=0): ${perSecond(q.proc)} / ${perSecond(b.proc)}; median of ${rounds} rounds`
    )
  }
  figure("proxyStart", "while a proxied app starts (binds after 2 s)")
  figure("handOffStart", "while a hand-off app starts (accepts after 2 s)")
  figure("idleLooks", "while an accepted connection stays open past -t (a look each second)")
}

const main = async () => {
  if (!Fs.existsSync(bin)) throw new Error("build first: npm run build")
  console.error(`soad benchmark, ${runs} runs each; this takes a few minutes`)
  const soad = part("cold") || part("many") ? await coldSoad() : { total: NaN, spawn: NaN }
  if (part("cold")) await reportCold(soad)
  if (part("running")) await reportRunning()
  if (part("warm")) await reportWarm()
  const idleFigures = part("idle") || part("many") ? await idle() : undefined
  if (idleFigures !== undefined && part("idle")) reportIdle(idleFigures)
  if (idleFigures !== undefined && part("many")) await reportMany(soad, idleFigures)
  if (part("proxy") && installed("wrk")) await reportProxy()
  if (part("precision")) await reportPrecision()
  if (part("accept")) await reportAccept()
  if (part("flood")) await reportFlood()
  if (part("notify")) await reportNotify()
  if (part("parsers")) reportParsers()
  if (part("neighbours")) await reportNeighbours()
  if (part("scale")) await reportScale()
  if (part("page")) await reportPage()
  if (part("control")) await reportControl()

  const date = new Date().toISOString().slice(0, 10)
  const machine = `${Os.cpus().length} cores, ${Os.cpus()[0]?.model.trim() ?? "?"}, Linux ${Os.release()}, Node ${process.versions.node}`
  console.log(`Measured ${date} on ${machine}; median of ${runs} runs (\`npm run bench\`).\n`)
  console.log("| what | figure | note |")
  console.log("|---|---|---|")
  for (const [what, value, note] of rows) console.log(`| ${what} | ${value} | ${note} |`)
}

if (process.env.BENCH_PARSERS === "child") {
  // The parsers' measurement, run by reportParsers under soad's V8 flags: figures on stdout, nothing else.
  Fs.rmSync(work, { recursive: true, force: true })
  console.log(JSON.stringify(Parsers.measure()))
} else {
  main()
    .catch((error) => {
      console.error(error)
      process.exitCode = 1
    })
    .finally(() => {
      for (const child of children) child.kill("SIGKILL")
      Fs.rmSync(work, { recursive: true, force: true })
    })
}
