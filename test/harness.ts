/**
 * Integration-test helpers: run the built soad (dist/bin.cjs) as a real process, talk to it over real sockets,
 * and look at real processes.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach, describe } from "vitest"

export const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
export const bin = Path.join(root, "dist", "bin.cjs")
export const appFixture = Path.join(root, "test", "fixtures", "app.mjs")

/** A fresh temporary directory, removed by `cleanup`. */
export const tempDir = (): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-test-"))

export interface Soad {
  readonly process: ChildProcess.ChildProcess
  readonly pid: number
  /** stderr lines so far. */
  readonly lines: Array<string>
  readonly output: () => string
  /** Resolves with the first line (already seen or coming) matching `pattern`. */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<string>
  /** Resolves with the exit code (or signal name) once soad exits. */
  readonly exited: Promise<number | string>
  readonly count: (pattern: RegExp) => number
}

const running = new Set<ChildProcess.ChildProcess>()

/** Starts soad with these arguments. */
export const soad = (
  args: ReadonlyArray<string>,
  options: { env?: NodeJS.ProcessEnv; cwd?: string; setpriv?: ReadonlyArray<string>; stderrFile?: string; launcher?: string } = {}
): Soad => {
  // setpriv (util-linux) runs soad as another user; it execs, so the pid is soad's own. `launcher`: a `soad` script
  // (src/soad.sh) to run instead of node and bin.cjs; it execs node, so the pid is soad's own too.
  const [program, argv] = options.launcher !== undefined
    ? [options.launcher, args]
    : options.setpriv === undefined
    ? [process.execPath, [bin, ...args]]
    : ["setpriv", [...options.setpriv, process.execPath, bin, ...args]]
  // stderrFile: soad's stderr is that file (its lines are then not seen by waitFor)
  const stderr = options.stderrFile === undefined ? "pipe" : Fs.openSync(options.stderrFile, "a")
  const child = ChildProcess.spawn(program, argv, {
    stdio: ["ignore", "pipe", stderr],
    env: options.env ?? process.env,
    cwd: options.cwd ?? root
  })
  if (typeof stderr === "number") Fs.closeSync(stderr)
  running.add(child)
  const lines: Array<string> = []
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = []
  let buffer = ""
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString()
    let newline: number
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + 1)
      lines.push(line)
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(line)
        }
      }
    }
  }
  child.stderr?.on("data", onData)
  child.stdout!.on("data", onData)
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => {
      running.delete(child)
      resolve(code ?? signal ?? -1)
    })
  })
  return {
    process: child,
    pid: child.pid!,
    lines,
    output: () => lines.join("\n") + (buffer === "" ? "" : "\n" + buffer),
    count: (pattern) => lines.filter((line) => pattern.test(line)).length,
    exited,
    waitFor: (pattern, timeoutMs = 10_000) => {
      const seen = lines.find((line) => pattern.test(line))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; soad said:\n${lines.join("\n")}`))
        }, timeoutMs)
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer)
            resolve(line)
          }
        })
        void exited.then(() => {
          setTimeout(() => {
            clearTimeout(timer)
            reject(new Error(`soad exited before a line matching ${pattern}; soad said:\n${lines.join("\n")}`))
          }, 50)
        })
      })
    }
  }
}

/** The test app's command in TOML (node and test/fixtures/app.mjs), for config files. */
export const appCommand = `${JSON.stringify(process.execPath)}, ${JSON.stringify(appFixture)}`

/** Writes a config file `apps.toml` into `dir`; its path. */
export const writeConfig = (dir: string, text: string): string => {
  const path = Path.join(dir, "apps.toml")
  Fs.writeFileSync(path, text)
  return path
}

/** Runs soad to completion (for bad input): its exit code and what it printed. */
export const soadRun = (
  args: ReadonlyArray<string>,
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}
): { readonly code: number | null; readonly stderr: string; readonly stdout: string } => {
  const result = ChildProcess.spawnSync(process.execPath, [bin, ...args], {
    env: options.env ?? process.env,
    cwd: options.cwd ?? root,
    encoding: "utf8",
    timeout: options.timeoutMs ?? 10_000
  })
  return { code: result.status, stderr: result.stderr, stdout: result.stdout }
}

/** Kills every soad a test started and left running. */
export const killAll = (): void => {
  for (const child of running) child.kill("SIGKILL")
}

/** The parsed JSON an HTTP GET returns, over a UNIX socket path or to a TCP port. */
export const get = (
  target: { readonly socketPath: string } | { readonly host: string; readonly port: number },
  path = "/",
  timeoutMs = 10_000
): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const request = Http.get({ ...target, path, agent: false, timeout: timeoutMs }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => {
        try {
          resolve(JSON.parse(body) as Record<string, unknown>)
        } catch (error) {
          reject(new Error(`bad response ${response.statusCode}: ${body}`, { cause: error }))
        }
      })
      response.on("error", reject)
    })
    request.on("timeout", () => request.destroy(new Error("request timed out")))
    request.on("error", reject)
  })

/** Is a process with this pid alive (and not a zombie)? */
export const alive = (pid: number): boolean => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.split(") ")[1]?.[0] !== "Z"
  } catch {
    return false
  }
}

/** Pids of the processes in a process group. */
export const groupMembers = (pgid: number): Array<number> =>
  Fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      const fields = Fs.readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]!.split(" ")
      return fields[0] !== "Z" && Number(fields[2]) === pgid ? [Number(entry)] : []
    } catch {
      return []
    }
  })

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Waits until `predicate` holds, checking every 20 ms. */
export const eventually = async (predicate: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> => {
  const end = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/** CPU time (user + system) a process has used, in seconds. */
export const cpuSeconds = (pid: number): number => {
  const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (100 Hz)
}

/**
 * Temporary directories for one test file: `dir()` makes one (mode 0755, so other users can reach files in it);
 * after each test, every soad still running is killed and the directories are removed.
 */
export const tempDirs = (): (() => string) => {
  const dirs: Array<string> = []
  afterEach(() => {
    killAll()
    for (const d of dirs.splice(0)) Fs.rmSync(d, { recursive: true, force: true })
  })
  return () => {
    const d = tempDir()
    Fs.chmodSync(d, 0o755)
    dirs.push(d)
    return d
  }
}

/** A TCP port nobody listens on right now. */
export const freePort = (host = "127.0.0.1"): Promise<number> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.listen(0, host, () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** soad's tests run as root here (CI is root): tests of other users, cgroups and chown need it. */
export const isRoot = process.getuid?.() === 0

/**
 * A suite that needs root (other users, cgroups, chown). CI runs as root, so it always runs there; elsewhere it is
 * skipped, and its name says why.
 */
export const describeAsRoot = (name: string, body: () => void): void => {
  if (isRoot) describe(name, body)
  else describe.skip(`${name} [skipped: needs root; CI runs it as root]`, body)
}

/** What a command run to its end printed, and how it ended (status null: killed, by `timeout` or a signal). */
export interface Ran {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs a command to its end without blocking this process: a long npm install or build must not stop the test
 * worker's event loop, or vitest's own calls to it time out after 60 s and fail the run ("Timeout calling
 * onTaskUpdate"). Killed after `timeout` ms.
 */
export const runAsync = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeout: number }
): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeout)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (status) => {
      clearTimeout(timer)
      resolve({ status, stdout, stderr })
    })
  })
