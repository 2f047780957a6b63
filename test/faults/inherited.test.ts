/**
 * Fault: soad's launcher hands it LISTEN_* variables that cannot be trusted: a count of 30 million fds (soad used to
 * build an entry per fd: seconds and gigabytes), 2^32, a negative or non-numeric count, or a count without a
 * LISTEN_PID. Promise: when soad is asked for an inherited socket, one line naming the variable and the bound, and
 * exit 2 at once; when it is not, a warning, and soad runs; a valid inherited socket still works.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { appFixture, bin, eventually, freePort, get, tempDirs } from "../harness.js"

const dir = tempDirs()

/** Runs soad through sh, so that LISTEN_PID=$$ is soad's own pid (sh execs node). */
const throughShell = (variables: string, args: ReadonlyArray<string>) => {
  const started = Date.now()
  const result = ChildProcess.spawnSync(
    "sh",
    ["-c", `${variables} exec "$0" "$@"`, process.execPath, bin, ...args],
    { encoding: "utf8", timeout: 10_000, env: { PATH: process.env.PATH } }
  )
  return { code: result.status, stderr: result.stderr, elapsed: Date.now() - started }
}

describe("inherited sockets are checked before they are trusted", () => {
  it.each(["30000000", "4294967296", "-1", "abc", "1025"])(
    "LISTEN_FDS=%s with LISTEN_PID=soad's pid and -l fd:3: one line naming LISTEN_FDS and its bound, exit 2, within 1 s",
    (count) => {
      const result = throughShell(`LISTEN_PID=$$ LISTEN_FDS=${count}`, ["-l", "fd:3", "--", "app"])
      const lines = result.stderr.trim().split("\n")
      expect(lines, result.stderr).toHaveLength(1)
      expect(lines[0]).toBe(
        `soad: fd:3: cannot use an inherited socket: LISTEN_FDS is "${count}": expected a whole number from 0 to 1024 ` +
          `(at most 1024, and no more than the open-file limit)`
      )
      expect(result.code).toBe(2)
      expect(result.elapsed).toBeLessThan(1000)
    }
  )

  it("the bound is the open-file limit when that is lower than 1024", () => {
    const result = throughShell(`ulimit -n 200 && LISTEN_PID=$$ LISTEN_FDS=500`, ["-l", "fd:3", "--", "app"])
    expect(result.stderr.trim()).toMatch(/LISTEN_FDS is "500": expected a whole number from 0 to 200 /)
    expect(result.code).toBe(2)
  })

  it("LISTEN_FDS=1 without LISTEN_PID and fd:3 asked for: refused with one line, exit 2", () => {
    const result = throughShell(`LISTEN_FDS=1`, ["-l", "fd:3", "--", "app"])
    expect(result.stderr.trim()).toBe(
      "soad: fd:3: cannot use an inherited socket: LISTEN_FDS is set without LISTEN_PID, so the sockets may be " +
        "another process's: the launcher must set LISTEN_PID to soad's pid"
    )
    expect(result.code).toBe(2)
  })

  it("LISTEN_FDS=30000000 when no inherited socket is asked for: a warning naming it, and soad serves", async () => {
    const d = dir()
    const path = Path.join(d, "a.sock")
    const s = ChildProcess.spawn(
      "sh",
      ["-c", `LISTEN_PID=$$ LISTEN_FDS=30000000 exec "$0" "$@"`, process.execPath, bin, "-s", path, "--", process.execPath, appFixture],
      { stdio: ["ignore", "ignore", "pipe"] }
    )
    let stderr = ""
    s.stderr.on("data", (chunk) => (stderr += chunk))
    try {
      await eventually(() => /listening on/.test(stderr), 10_000, "soad listening")
      expect(stderr).toMatch(/WARN .*ignoring the LISTEN_\* variables soad was given: LISTEN_FDS is "30000000": expected a whole number from 0 to 1024/)
      // The app gets its own socket only: soad's variables were unset, not passed on.
      expect(await get({ socketPath: path })).toMatchObject({ listenFds: 1, name: "soad" })
    } finally {
      s.kill("SIGTERM")
      await new Promise((resolve) => s.on("exit", resolve))
    }
  })

  it("a valid inherited socket still works: LISTEN_FDS=1 and LISTEN_PID=soad's pid, fd 3 a listening socket", async () => {
    const port = await freePort()
    // python binds the socket at fd 3 and execs soad in the same process, as a launcher does.
    const launcher = ChildProcess.spawn("python3", [
      "-c",
      [
        "import os, socket, sys",
        `s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", ${port})); s.listen(16)`,
        "if s.fileno() != 3: os.dup2(s.fileno(), 3)",
        "os.set_inheritable(3, True)",
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))",
        "os.execv(sys.argv[1], sys.argv[1:])"
      ].join("\n"),
      process.execPath,
      bin,
      "-l",
      "fd:3",
      "--",
      process.execPath,
      appFixture
    ], { stdio: "ignore" })
    try {
      let reply: Record<string, unknown> | undefined
      for (let i = 0; i < 50 && reply === undefined; i++) {
        reply = await get({ host: "127.0.0.1", port }, "/", 2000).catch(() => undefined)
        if (reply === undefined) await new Promise((resolve) => setTimeout(resolve, 100))
      }
      expect(reply).toMatchObject({ fd: 3, listenFds: 1 })
      expect(reply?.ppid).toBe(launcher.pid)
    } finally {
      launcher.kill("SIGTERM")
      await new Promise((resolve) => launcher.on("exit", resolve))
    }
  })
})
