/**
 * A busy host for tests and the benchmark: many open TCP (and UNIX) sockets held by helper processes
 * (test/fixtures/host-sockets.mjs), each with its open-file limit raised to its hard limit, as many helpers as the
 * numbers need.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"

/** Sockets held until `stop`. */
export interface HostSockets {
  /** How many each kind the helpers hold (fewer than asked where the fd limits would not allow more). */
  readonly tcp: number
  readonly unix: number
  readonly stop: () => Promise<void>
}

/** One helper: the sockets it holds once it is ready. */
const startHelper = (helper: string, tcp: number, unix: number, dir: string) =>
  new Promise<{ child: ChildProcess.ChildProcess; tcp: number; unix: number }>((resolve, reject) => {
    // Raising the soft limit to the hard one needs no privilege.
    const child = ChildProcess.spawn(
      "sh",
      ["-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', process.execPath, helper, "--tcp", String(tcp), "--unix", String(unix), "--dir", dir],
      { stdio: ["pipe", "pipe", "inherit"] }
    )
    let out = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const ready = /ready (\d+) (\d+)/.exec(out)
      if (ready !== null) resolve({ child, tcp: Number(ready[1]), unix: Number(ready[2]) })
    })
    child.on("error", reject)
    child.on("exit", (code) => reject(new Error(`host-sockets.mjs exited (${code}) before it was ready: ${out}`)))
  })

/**
 * Opens about `tcp` TCP and `unix` UNIX sockets on this host (loopback connections, both ends counted); `root` is
 * the repository's (the helper is test/fixtures/host-sockets.mjs), `dir` where the UNIX listener's file goes.
 */
export const hostSockets = async (wanted: {
  readonly root: string
  readonly dir: string
  readonly tcp: number
  readonly unix?: number
}): Promise<HostSockets> => {
  const helper = Path.join(wanted.root, "test", "fixtures", "host-sockets.mjs")
  const helpers: Array<ChildProcess.ChildProcess> = []
  let tcp = 0
  let unix = 0
  const stop = async () => {
    await Promise.all(helpers.map((child) =>
      child.exitCode !== null ? undefined : new Promise((resolve) => {
        child.once("exit", resolve)
        child.stdin!.end()
      })
    ))
  }
  try {
    for (let i = 0; i < 16 && (tcp < wanted.tcp - 1 || unix < (wanted.unix ?? 0) - 1); i++) {
      const got = await startHelper(helper, wanted.tcp - tcp, (wanted.unix ?? 0) - unix, wanted.dir)
      helpers.push(got.child)
      if (got.tcp + got.unix === 0) break // no room at all: the limits allow no more
      tcp += got.tcp
      unix += got.unix
    }
  } catch (error) {
    await stop()
    throw error
  }
  return { tcp, unix, stop }
}
