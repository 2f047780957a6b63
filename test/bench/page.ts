/**
 * `BENCH_ONLY=page`: the status page of `--metrics` with 1,000 services (10 of them running): the page's size, the
 * time to GET / and GET /metrics, and soad's CPU per page (its utime + stime over 30 pages). Goal: a page that stays
 * small enough to load every 10 s, and costs soad a few ms of CPU, linear in the services.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"

/** What run.ts lends: its helpers and settings. */
export interface Bench {
  readonly command: string
  readonly work: string
  readonly app: string
  readonly env: NodeJS.ProcessEnv
  readonly children: Set<ChildProcess.ChildProcess>
  readonly median: (values: ReadonlyArray<number>) => number
  readonly freePort: () => Promise<number>
  readonly logFile: (path: string) => { readonly waitFor: (pattern: RegExp, count?: number, timeoutMs?: number) => Promise<void> }
}

/** The page's figures. */
export interface Figures {
  readonly services: number
  readonly bytes: number
  /** Median ms of a GET, from the request to the last byte. */
  readonly page: number
  readonly metrics: number
  /** soad's CPU per page, ms. */
  readonly cpu: number
  /** soad's RSS (MB) before the first GET, and 8 s after the last of them (its garbage given back meanwhile). */
  readonly rssBefore: number
  readonly rssAfter: number
}

const fetch = (port: number, path: string): Promise<{ ms: number; bytes: number }> =>
  new Promise((resolve, reject) => {
    const t0 = performance.now()
    Http.get({ host: "127.0.0.1", port, path, agent: false }, (response) => {
      let bytes = 0
      response.on("data", (chunk: Buffer) => (bytes += chunk.length))
      response.on("end", () => resolve({ ms: performance.now() - t0, bytes }))
    }).on("error", reject)
  })

/** soad's CPU so far (utime + stime), in ms (clock ticks of 10 ms). */
const cpuMs = (pid: number): number => {
  const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** soad's resident memory, MB. */
const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024

export const page = async (b: Bench, services = 1000, running = 10, rounds = 30): Promise<Figures> => {
  const dir = Path.join(b.work, "page")
  Fs.mkdirSync(dir, { recursive: true })
  const sock = (i: number) => Path.join(dir, `s${i}.sock`)
  const file = Path.join(dir, "apps.toml")
  Fs.writeFileSync(file, Array.from({ length: services }, (_, i) =>
    `[services.service-${i}]\nlisten = [${JSON.stringify(sock(i))}]\n` +
    `command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(b.app)}]\ntime-until-stop = 600\n`
  ).join(""))
  const port = await b.freePort()
  const logPath = Path.join(dir, "soad.log")
  const log = Fs.openSync(logPath, "w")
  const child = ChildProcess.spawn(b.command, ["-c", file, "--control", Path.join(dir, "control.sock"), "--metrics", `127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", log],
    env: b.env
  })
  Fs.closeSync(log)
  b.children.add(child)
  child.on("exit", () => b.children.delete(child))
  try {
    const lines = b.logFile(logPath)
    await lines.waitFor(/the status page on http/, 1, 120_000)
    for (let i = 0; i < running; i++) {
      await new Promise<void>((resolve) => Net.connect(sock(i)).on("connect", function(this: Net.Socket) {
        this.destroy()
        resolve()
      }).on("error", () => resolve()))
    }
    await lines.waitFor(/the app accepts/, running, 60_000)
    await new Promise((resolve) => setTimeout(resolve, 3_000)) // soad's settle after the start (1 s), done
    const rssBefore = rssMb(child.pid!)
    for (let i = 0; i < 5; i++) await fetch(port, "/") // warm-up
    const pages: Array<number> = []
    let bytes = 0
    const before = cpuMs(child.pid!)
    for (let i = 0; i < rounds; i++) {
      const got = await fetch(port, "/")
      pages.push(got.ms)
      bytes = got.bytes
    }
    const cpu = (cpuMs(child.pid!) - before) / rounds
    const metrics: Array<number> = []
    for (let i = 0; i < rounds; i++) metrics.push((await fetch(port, "/metrics")).ms)
    await new Promise((resolve) => setTimeout(resolve, 8_000))
    return { services, bytes, page: b.median(pages), metrics: b.median(metrics), cpu, rssBefore, rssAfter: rssMb(child.pid!) }
  } finally {
    child.kill("SIGTERM")
    await new Promise((resolve) => child.once("exit", resolve))
  }
}
