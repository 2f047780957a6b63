/**
 * `BENCH_ONLY=neighbours`: one soad, a quiet service and five neighbours, each put under the pressure that once
 * stopped soad for everyone: 10 adversarial request heads at a waiting page (`X: a<16,000 spaces>b`, again and
 * again), 1,100 idle clients held by a proxied service, an app writing as fast as it can (`yes`), a stranger
 * flooding an app's notify socket, and an app that can never start with clients that keep trying (a crash loop).
 * For each, the quiet service's cold start and `soad status` are measured while the pressure lasts, beside the
 * same figures with no pressure, in the same soad. Goal: each within 1.5× of quiet, nothing failed.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"

/** What run.ts lends: its helpers and settings. */
export interface Bench {
  readonly command: string
  readonly work: string
  readonly root: string
  readonly app: string
  readonly env: NodeJS.ProcessEnv
  readonly runs: number
  readonly children: Set<ChildProcess.ChildProcess>
  readonly sleep: (ms: number) => Promise<void>
  readonly median: (values: ReadonlyArray<number>) => number
  readonly timedGet: (target: { readonly socketPath: string }) => Promise<number>
  readonly timeRun: (program: string, args: ReadonlyArray<string>) => number
  readonly waitForFile: (path: string) => Promise<void>
  readonly freePort: () => Promise<number>
  readonly logFile: (path: string) => {
    readonly own: Array<string>
    readonly look: () => void
    readonly waitFor: (pattern: RegExp, count?: number, timeoutMs?: number) => Promise<void>
  }
}

/** The quiet service's figures under one kind of pressure. */
export interface Figures {
  readonly pressure: string
  readonly cold: number
  readonly status: number
  readonly failed: number
}

/** A complete 16 KiB head whose header value made the first classifier quadratic. */
const adversarialHead = (): Buffer =>
  Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nX: a${" ".repeat(16_000)}b\r\n\r\n`, "latin1")

export const neighbours = async (b: Bench): Promise<ReadonlyArray<Figures>> => {
  const sock = (name: string) => Path.join(b.work, `nb-${name}.sock`)
  const fixture = (name: string) => Path.join(b.root, "test", "fixtures", name)
  const info = Path.join(b.work, "nb-notify-info")
  const never1 = await b.freePort()
  const never2 = await b.freePort()
  const toml = `
[services.quiet]
listen = [${JSON.stringify(sock("quiet"))}]
command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(b.app)}]
time-until-stop = 0.2
min-uptime = 0

[services.heads]
listen = [${JSON.stringify(sock("heads"))}]
command = ["sleep", "100000"]
upstream = "127.0.0.1:${never1}"
waiting-page = 0.05
start-timeout = 100000

[services.held]
listen = [${JSON.stringify(sock("held"))}]
command = ["sleep", "100000"]
upstream = "127.0.0.1:${never2}"
max-held = 1100
backlog = 2048
start-timeout = 100000

[services.flood]
listen = [${JSON.stringify(sock("flood"))}]
command = ["yes"]
time-until-stop = 100000
start-timeout = 100000

[services.notify]
listen = [${JSON.stringify(sock("notify"))}]
command = ["python3", ${JSON.stringify(fixture("notify-app.py"))}]
ready = "notify"
env = { INFO_FILE = ${JSON.stringify(info)}, READY_DELAY = "0" }
time-until-stop = 100000
start-timeout = 100000

[services.crash]
listen = [${JSON.stringify(sock("crash"))}]
command = ["false"]
max-backoff = 1
`
  const file = Path.join(b.work, "neighbours.toml")
  Fs.writeFileSync(file, toml)
  const control = Path.join(b.work, "nb-control.sock")
  const logPath = Path.join(b.work, "neighbours.log")
  const log = Fs.openSync(logPath, "w")
  const child = ChildProcess.spawn(b.command, ["-c", file, "--control", control], { stdio: ["ignore", "ignore", log], env: b.env })
  Fs.closeSync(log)
  b.children.add(child)
  child.on("exit", () => b.children.delete(child))
  const lines = b.logFile(logPath)
  await lines.waitFor(/listening on/, 6)
  await b.waitForFile(control)
  const soad = (...args: ReadonlyArray<string>) => b.timeRun(b.command, [...args, "--control", control])
  let exits = 0
  /** The quiet service's cold starts and `soad status`, medians; a cold start that fails is counted. */
  const quiet = async (pressure: string): Promise<Figures> => {
    const cold: Array<number> = []
    const status: Array<number> = []
    let failed = 0
    for (let i = 0; i < b.runs; i++) {
      try {
        cold.push(await b.timedGet({ socketPath: sock("quiet") }))
        await lines.waitFor(/\[quiet\] app exited/, ++exits, 60_000)
      } catch {
        failed++
      }
      status.push(soad("status"))
    }
    return { pressure, cold: b.median(cold), status: b.median(status), failed }
  }
  const results: Array<Figures> = [await quiet("none")]

  /** Runs `pressure` (it returns how to end it) around one measurement of the quiet service. */
  const under = async (name: string, pressure: () => Promise<() => Promise<void>>) => {
    const end = await pressure()
    await b.sleep(1_000)
    results.push(await quiet(name))
    await end()
  }

  // 10 adversarial heads at a time, each connection replaced every half second: classified again and again.
  await under("10 adversarial request heads at a waiting page, renewed every 0.5 s", async () => {
    let on = true
    const open: Array<Net.Socket> = []
    const loop = (async () => {
      while (on) {
        for (const socket of open.splice(0)) socket.destroy()
        for (let i = 0; i < 10; i++) {
          const socket = Net.connect(sock("heads")).on("error", () => {})
          socket.write(adversarialHead())
          open.push(socket)
        }
        await b.sleep(500)
      }
    })()
    return async () => {
      on = false
      await loop
      for (const socket of open.splice(0)) socket.destroy()
    }
  })

  await under("1,100 idle clients held by a proxied neighbour", async () => {
    const held: Array<Net.Socket> = []
    for (let i = 0; i < 1100; i++) held.push(Net.connect(sock("held")).on("error", () => {}))
    await b.sleep(2_000)
    return async () => {
      for (const socket of held) socket.destroy()
      soad("sleep", "held")
    }
  })

  await under("a neighbour writing as fast as it can (yes)", async () => {
    soad("wake", "flood")
    return async () => {
      soad("sleep", "flood")
    }
  })

  await under("a stranger flooding a neighbour's notify socket", async () => {
    Fs.rmSync(info, { force: true })
    soad("wake", "notify")
    await b.waitForFile(info)
    let path = ""
    while (path === "") {
      path = Fs.readFileSync(info, "utf8").split("\n")[1] ?? ""
      await b.sleep(10)
    }
    const started = Path.join(b.work, "nb-flood-started")
    const flooder = ChildProcess.spawn("setsid", ["python3", fixture("notify-flood.py"), path, started], { stdio: "ignore" })
    b.children.add(flooder)
    await b.waitForFile(started)
    return async () => {
      flooder.kill("SIGKILL")
      soad("sleep", "notify")
    }
  })

  await under("a neighbour that can never start, with clients that keep trying", async () => {
    let on = true
    const loop = (async () => {
      const open: Array<Net.Socket> = []
      while (on) {
        open.push(Net.connect(sock("crash")).on("error", () => {}))
        if (open.length > 20) open.shift()!.destroy()
        await b.sleep(100)
      }
      for (const socket of open) socket.destroy()
    })()
    return async () => {
      on = false
      await loop
    }
  })

  child.kill("SIGTERM")
  await new Promise((resolve) => child.once("exit", resolve))
  return results
}
