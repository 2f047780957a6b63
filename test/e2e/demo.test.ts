/**
 * `npm start` (src/demo/start.mjs), stopped the ways a user or a tool stops it. Fault: npm runs the script through
 * `sh -c`; a SIGTERM to npm killed that sh and left the script and soad running on the port, and a SIGKILL reaches
 * nobody. Promise: however npm or the script is stopped, soad and the app stop too, and the port is free.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { alive, eventually, freePort, root } from "../harness.js"

/** The parent of a process, from /proc. */
const parentOf = (pid: number): number | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return undefined
  }
}

/** Every live descendant of `pid`. */
const descendants = (pid: number): Array<number> => {
  const all = Fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number)
  const found: Array<number> = []
  for (let frontier = [pid]; frontier.length > 0;) {
    frontier = all.filter((candidate) => frontier.includes(parentOf(candidate) ?? -1) && alive(candidate))
    found.push(...frontier)
  }
  return found
}

const commandOf = (pid: number): string => {
  try {
    return Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ")
  } catch {
    return ""
  }
}

const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.on("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.on("error", () => resolve(false))
  })

const fetchText = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    Http.get({ host: "127.0.0.1", port, path: "/", agent: false }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => resolve(body))
    }).on("error", reject)
  })

const started: Array<number> = []
afterEach(() => {
  // Whatever a failed test left: the processes it started, by pid.
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
})

/** `npm start` in its own process group, on a free port, with the app started by a request. */
const demo = async () => {
  const port = await freePort()
  const npm = ChildProcess.spawn("npm", ["start"], {
    cwd: root,
    env: { ...process.env, PORT: String(port) },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  npm.stdout.on("data", (chunk) => (output += chunk))
  npm.stderr.on("data", (chunk) => (output += chunk))
  await eventually(() => /listening on 127\.0\.0\.1:\d+/.test(output), 15_000, "soad to listen")
  expect(await fetchText(port)).toMatch(/Hello from the demo app/)
  const tree = descendants(npm.pid!)
  started.push(...tree)
  const script = tree.find((pid) => commandOf(pid).includes("src/demo/start.mjs") && !commandOf(pid).startsWith("sh"))!
  const soad = tree.find((pid) => commandOf(pid).startsWith("soad "))! // soad names itself soad in ps
  const app = tree.find((pid) => commandOf(pid) === `${process.execPath} ${root}/src/demo/app.mjs `)!
  expect([script, soad, app].every((pid) => pid !== undefined)).toBe(true)
  return { port, npm: npm.pid!, script, soad, app, tree, output: () => output }
}

/** Nothing of the demo is left: no process of its tree, nothing on its port; and soad stopped its app itself. */
const nothingLeft = async (run: Awaited<ReturnType<typeof demo>>) => {
  await eventually(() => run.tree.every((pid) => !alive(pid)), 15_000, `the demo's processes to end`)
  expect(await listening(run.port)).toBe(false)
  expect(run.output()).toMatch(/soad is shutting down: stopping the app/)
  expect(run.output()).toMatch(/app exited \(code 0/)
}

describe("npm start", () => {
  it("SIGTERM to npm stops soad and the app", async () => {
    const run = await demo()
    process.kill(run.npm, "SIGTERM")
    await nothingLeft(run)
  }, 40_000)

  it("SIGKILL to npm stops soad and the app (the script sees npm go)", async () => {
    const run = await demo()
    process.kill(run.npm, "SIGKILL")
    await nothingLeft(run)
  }, 40_000)

  it("SIGKILL to the script stops soad and the app (parent-death signal)", async () => {
    const run = await demo()
    process.kill(run.script, "SIGKILL")
    await nothingLeft(run)
  }, 40_000)

  it("Ctrl-C (SIGINT to the whole group) stops soad gracefully, once", async () => {
    const run = await demo()
    process.kill(-run.npm, "SIGINT")
    await nothingLeft(run)
  }, 40_000)

  it("SIGKILL to npm's whole process group stops soad and the app", async () => {
    const run = await demo()
    process.kill(-run.npm, "SIGKILL")
    await nothingLeft(run)
  }, 40_000)

  it("SIGTERM to the script stops soad and the app", async () => {
    const run = await demo()
    process.kill(run.script, "SIGTERM")
    await nothingLeft(run)
  }, 40_000)
})
