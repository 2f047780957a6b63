/**
 * The warm-path tests' tools: patterns of connections, and what they read of a running soad: the idle time its
 * control socket says, and the context switches of a process's threads (each wake of a sleeping thread is one).
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import { get, sleep } from "./harness.js"

/**
 * Connections to a running app at moments of their own, each pattern ending with one: its start (Date.now()) is
 * what the pattern returns. A burst; one after a quiet second (the listener armed); two a few ms apart (the second
 * while the listener is disarmed after the first, or just after it is armed again).
 */
export const connectionPatterns = (socketPath: string): ReadonlyArray<readonly [string, () => Promise<number>]> => [
  ["a burst of 100 at once", async () => {
    const began = Date.now()
    await Promise.all(Array.from({ length: 100 }, () => get({ socketPath })))
    return began
  }],
  ["one after a quiet second", async () => {
    await sleep(1000)
    const began = Date.now()
    await get({ socketPath })
    return began
  }],
  ...Array.from({ length: 8 }, (_, i): readonly [string, () => Promise<number>] => [
    `two, ${i * 20} ms apart`,
    async () => {
      await sleep(300) // any window of the pattern before is over
      await get({ socketPath })
      await sleep(i * 20)
      const began = Date.now()
      await get({ socketPath })
      return began
    }
  ])
]

/** `count` connections to a UNIX socket, one after another, each closed at once; how long they took (s). */
export const connectInTurn = async (socketPath: string, count: number): Promise<number> => {
  const began = Date.now()
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) => {
      const client = Net.connect(socketPath, () => client.end())
      client.on("close", () => resolve())
      client.on("error", reject)
    })
  }
  return (Date.now() - began) / 1000
}

/** One request to soad's control socket: its JSON answer. */
const control = (path: string, body: Record<string, unknown>): Promise<unknown> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect(path, () => socket.write(JSON.stringify(body) + "\n"))
    let answer = ""
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => (answer += chunk))
    socket.on("end", () => {
      try {
        resolve(JSON.parse(answer))
      } catch (error) {
        reject(new Error(`no answer from soad at ${path}: ${answer}`, { cause: error }))
      }
    })
    socket.on("error", reject)
  })

/** How long `service` has been idle, in milliseconds, as `soad status` says (its latest activity to now). */
export const idleMillis = async (path: string, service: string): Promise<number> => {
  const answer = await control(path, { command: "status" }) as {
    readonly services?: ReadonlyArray<{ readonly name: string; readonly idle_s: number | null }>
  }
  const idle = answer.services?.find((s) => s.name === service)?.idle_s
  if (idle === undefined || idle === null) throw new Error(`soad says no idle time for ${service}: ${JSON.stringify(answer)}`)
  return idle * 1000
}

/** The context switches (voluntary and not) of all the threads of a process so far. */
export const contextSwitches = (pid: number): number => {
  let total = 0
  for (const task of Fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = Fs.readFileSync(`/proc/${pid}/task/${task}/status`, "utf8")
      total += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      total += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
    } catch {
      // the thread has just ended
    }
  }
  return total
}
