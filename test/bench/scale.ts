/**
 * `BENCH_ONLY=scale` (with the busy host in run.ts): one soad with 1, 100 and 1,000 services (UNIX listeners, the
 * tiny C app, one config file): start-up to every listener, soad's RSS 5 s after, `soad status`, a reload that
 * changes one service, and a storm of 30 SIGHUPs 50 ms apart (from the last signal to the last reload done).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

/** What run.ts lends. */
export interface Bench {
  readonly command: string
  readonly work: string
  readonly env: NodeJS.ProcessEnv
  readonly runs: number
  readonly children: Set<ChildProcess.ChildProcess>
  readonly sleep: (ms: number) => Promise<void>
  readonly median: (values: ReadonlyArray<number>) => number
  readonly timeRun: (program: string, args: ReadonlyArray<string>) => number
  readonly rss: (pid: number) => number
}

/** One size's figures. */
export interface Figures {
  readonly services: number
  /** ms from spawn to the last `listening` line. */
  readonly startup: number
  /** MB, 5 s after the last listener. */
  readonly rss: number
  /** ms of `soad status` (the whole command). */
  readonly status: number
  /** ms from SIGHUP to the reload's summary, one service changed. */
  readonly reloadOne: number
  /** ms from the last of 30 SIGHUPs (50 ms apart) to the end of the last reload; and how many reloads ran. */
  readonly storm: number
  readonly stormReloads: number
}

const config = (dir: string, app: string, count: number, changed: boolean) =>
  Array.from({ length: count }, (_, i) =>
    `[services.s${i}]\nlisten = [${JSON.stringify(Path.join(dir, `s${i}.sock`))}]\ncommand = [${JSON.stringify(app)}]\n` +
    `time-until-stop = ${changed && i === 0 ? 61 : 60}\n`).join("\n")

/** soad's stderr lines, read from a file as they come, with the time each was seen. */
const watch = (path: string) => {
  let offset = 0
  let rest = ""
  const lines: Array<{ readonly at: number; readonly text: string }> = []
  const look = () => {
    const fd = Fs.openSync(path, "r")
    try {
      const buffer = Buffer.alloc(1 << 20)
      for (;;) {
        const n = Fs.readSync(fd, buffer, 0, buffer.length, offset)
        if (n === 0) break
        offset += n
        const parts = (rest + buffer.toString("utf8", 0, n)).split("\n")
        rest = parts.pop()!
        const at = performance.now()
        for (const text of parts) lines.push({ at, text })
      }
    } finally {
      Fs.closeSync(fd)
    }
  }
  return { lines, look }
}

export const scale = async (b: Bench, app: string, count: number): Promise<Figures> => {
  const dir = Fs.mkdtempSync(Path.join(b.work, `scale-${count}-`))
  const file = Path.join(dir, "apps.toml")
  Fs.writeFileSync(file, config(dir, app, count, false))
  const logPath = Path.join(dir, "soad.log")
  const log = Fs.openSync(logPath, "w")
  const control = Path.join(dir, "control.sock")
  const t0 = performance.now()
  const child = ChildProcess.spawn(b.command, ["-c", file, "--control", control], { stdio: ["ignore", "ignore", log], env: b.env })
  Fs.closeSync(log)
  b.children.add(child)
  child.on("exit", () => b.children.delete(child))
  const { lines, look } = watch(logPath)
  const waitUntil = async (ok: () => boolean, what: string, timeoutMs = 60_000) => {
    const end = performance.now() + timeoutMs
    for (;;) {
      look()
      if (ok()) return
      if (performance.now() > end) throw new Error(`scale ${count}: no ${what}:\n${lines.slice(-5).map((l) => l.text).join("\n")}`)
      await b.sleep(5)
    }
  }
  const count_ = (pattern: RegExp) => lines.filter((line) => pattern.test(line.text)).length
  await waitUntil(() => count_(/listening on /) === count, "listeners")
  const startup = lines.filter((line) => /listening on /.test(line.text)).at(-1)!.at - t0
  await b.sleep(5_000)
  const rss = b.rss(child.pid!)
  const statuses: Array<number> = []
  for (let i = 0; i < b.runs; i++) statuses.push(b.timeRun(b.command, ["status", "--control", control]))
  // One service changed: only it restarts.
  Fs.writeFileSync(file, config(dir, app, count, true))
  const before = count_(/reloaded /)
  const sent = performance.now()
  child.kill("SIGHUP")
  await waitUntil(() => count_(/reloaded /) > before, "reload")
  const reloadOne = lines.filter((line) => /reloaded /.test(line.text)).at(-1)!.at - sent
  // A storm: 30 signals, each on its own.
  await b.sleep(2_000)
  const stormFrom = count_(/reloading/)
  for (let i = 0; i < 30; i++) {
    child.kill("SIGHUP")
    await b.sleep(50)
  }
  // Wall-clock time, as soad stamps its lines: the storm's end is read from the stamp of its last reload, not from
  // when the bench happened to read that line (a line read after the wait below would seem 1.5 s late).
  const last = Date.now()
  await b.sleep(100)
  await waitUntil(() => {
    const begun = count_(/reloading/) - stormFrom
    const done = count_(/reloaded |reload_failed/) - before - 1
    return begun > 0 && begun === done
  }, "the storm's reloads")
  await b.sleep(1_500) // one more, if one were still to come
  look()
  const reloads = lines.filter((line) => /reloaded |reload_failed/.test(line.text))
  const stamped = Date.parse(reloads.at(-1)!.text.slice(0, reloads.at(-1)!.text.indexOf(" ")))
  if (Number.isNaN(stamped)) throw new Error(`scale ${count}: a reload line without a time stamp: ${reloads.at(-1)!.text}`)
  const storm = Math.max(0, stamped - last)
  const stormReloads = count_(/reloading/) - stormFrom
  child.kill("SIGTERM")
  await new Promise((resolve) => child.once("exit", resolve))
  Fs.rmSync(dir, { recursive: true, force: true })
  return { services: count, startup, rss, status: b.median(statuses), reloadOne, storm, stormReloads }
}
