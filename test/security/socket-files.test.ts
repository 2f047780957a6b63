/**
 * Socket files in a directory other users may write to: soad never follows a symlink planted there, never
 * publishes a socket with the wrong mode or owner, and never removes or changes a file that is not its own.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { native } from "../../src/os/native.js"
import { alive, appFixture, describeAsRoot, eventually, sleep, soad, soadRun, tempDirs } from "../harness.js"

const dir = tempDirs()

const nobodyUid = (): number => Number(ChildProcess.execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim())

/** Runs a shell command as nobody. */
const asNobody = (script: string, ...args: Array<string>) =>
  ChildProcess.execFileSync("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c", script, ...args])

/** GET /metrics over a UNIX socket: the body. */
const scrape = (socketPath: string): Promise<string> =>
  new Promise((resolve, reject) => {
    Http.get({ socketPath, path: "/metrics", agent: false }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => resolve(body))
    }).on("error", reject)
  })

/** A socket file at `path` nobody listens on any more (its process was killed). */
const staleSocket = (path: string) => {
  const script = `require("net").createServer().listen(process.argv[1], () => process.kill(process.pid, "SIGKILL"))`
  ChildProcess.spawnSync(process.execPath, ["-e", script, path])
  expect(Fs.lstatSync(path).isSocket()).toBe(true)
}

const events = (lines: ReadonlyArray<string>) =>
  lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>]
    } catch {
      return []
    }
  })

describeAsRoot("a UNIX listener in a directory the socket user may write to", () => {
  it("reload attack: the socket swapped for a symlink to a root file; SIGHUP neither chmods nor chowns the target", async () => {
    const d = dir()
    Fs.chmodSync(d, 0o777) // the socket user may replace files here
    const secretDir = dir()
    const secret = Path.join(secretDir, "shadow")
    Fs.writeFileSync(secret, "root:secret\n", { mode: 0o600 })
    const sock = Path.join(d, "a.sock")
    const config = Path.join(secretDir, "apps.toml")
    const write = (mode: string) =>
      Fs.writeFileSync(
        config,
        `[services.a]\nlisten = ["${sock}"]\ncommand = [${JSON.stringify(process.execPath)}, ${JSON.stringify(appFixture)}]\n` +
          `socket-user = "nobody"\nsocket-mode = "${mode}"\n`
      )
    write("0660")
    const s = soad(["-c", config, "--log-format", "json"])
    await s.waitFor(/"event":"listening"/)
    expect(Fs.lstatSync(sock).uid).toBe(nobodyUid())

    // The attack: as nobody, replace soad's socket with a symlink to a root-only file.
    asNobody(`rm -f "$0" && ln -s "$1" "$0"`, sock, secret)
    expect(Fs.lstatSync(sock).isSymbolicLink()).toBe(true)
    write("0666")
    s.process.kill("SIGHUP")
    await s.waitFor(/"event":"reloaded"/)

    // The promise: the target keeps its mode and owner, soad says why it left the path alone, and runs on.
    const target = Fs.statSync(secret)
    expect(target.mode & 0o7777).toBe(0o600)
    expect(target.uid).toBe(0)
    expect(Fs.readFileSync(secret, "utf8")).toBe("root:secret\n")
    const refused = events(s.lines).find((entry) => entry.event === "socket_replaced")
    expect(refused).toMatchObject({ level: "error", path: sock })
    expect(String(refused!.message)).toContain(sock)
    await sleep(200)
    expect(alive(s.pid)).toBe(true)
  })

  it("the socket never appears with a wider mode or another user's ownership than asked, and nothing is left over", async () => {
    const d = dir()
    const sock = Path.join(d, "a.sock")
    const sightings: Array<{ kind: string; name: string; mode: number | undefined; uid: number | undefined }> = []
    // The attack: a watcher acting the moment the name appears (connect, or swap the file before a chmod).
    const watcher = Fs.watch(d, (kind, name) => {
      if (name === null) return
      let stat: Fs.Stats | undefined
      try {
        stat = Fs.lstatSync(Path.join(d, name))
      } catch {
        stat = undefined
      }
      sightings.push({ kind, name, mode: stat === undefined ? undefined : stat.mode & 0o7777, uid: stat?.uid })
    })
    try {
      const s = soad(["-s", sock, "--socket-mode", "0660", "--socket-user", "nobody", "--", "node", appFixture])
      await s.waitFor(/listening on/)
      await eventually(() => sightings.some((entry) => entry.name === "a.sock"), 15_000, "a.sock seen")
      await sleep(200)
      const ours = sightings.filter((entry) => entry.name === "a.sock")
      // The promise: from its first sighting the file admits nobody (mode 0, soad's) until it has exactly the
      // mode and owner asked for; it is never seen with any other mode, and it changes no more once listening.
      for (const entry of ours) {
        if (entry.mode === undefined) continue
        expect([0, 0o660], JSON.stringify(ours)).toContain(entry.mode)
        if (entry.mode === 0) expect(entry.uid).toBe(0)
      }
      const final = Fs.lstatSync(sock)
      expect({ mode: final.mode & 0o7777, uid: final.uid }).toEqual({ mode: 0o660, uid: nobodyUid() })
      const settled = sightings.length
      await sleep(300)
      expect(sightings.slice(settled)).toEqual([])
      expect(Fs.readdirSync(d)).toEqual(["a.sock"])
      s.process.kill("SIGTERM")
      expect(await s.exited).toBe(0)
      expect(Fs.readdirSync(d)).toEqual([])
    } finally {
      watcher.close()
    }
  })
})

describe("--metrics PATH", () => {
  const run = (d: string, metrics: string) =>
    soadRun(["-s", Path.join(d, "a.sock"), "--metrics", metrics, "--", "node", appFixture])

  it("a regular file there: soad refuses in one line, exits non-zero, and leaves the file as it was", () => {
    const d = dir()
    const metrics = Path.join(d, "metrics.sock")
    Fs.writeFileSync(metrics, "someone's data\n")
    const result = run(d, metrics)
    expect(Fs.readFileSync(metrics, "utf8")).toBe("someone's data\n")
    expect(result.code).not.toBe(0)
    const about = result.stderr.split("\n").filter((line) => line.includes(metrics))
    expect(about).toEqual([`soad: --metrics ${metrics} exists and is not a socket; soad will not replace it: remove it or choose another path`])
  })

  it("another process's live socket there: refused, and that process still serves on it", async () => {
    const d = dir()
    const metrics = Path.join(d, "metrics.sock")
    const other = Net.createServer((socket) => socket.on("error", () => {}).end("theirs\n"))
    await new Promise<void>((resolve) => other.listen(metrics, resolve))
    try {
      const result = run(d, metrics)
      const answer = await new Promise<string>((resolve, reject) => {
        let text = ""
        Net.connect(metrics).on("data", (chunk) => (text += chunk)).on("end", () => resolve(text)).on("error", reject)
      })
      expect(answer).toBe("theirs\n")
      expect(result.code).not.toBe(0)
      const about = result.stderr.split("\n").filter((line) => line.includes(metrics))
      expect(about).toEqual([`soad: --metrics ${metrics}: another process is listening on it: stop it or choose another path`])
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()))
    }
  })

  it("a stale socket there is replaced, served, and removed at exit", async () => {
    const d = dir()
    const metrics = Path.join(d, "metrics.sock")
    staleSocket(metrics)
    const s = soad(["-s", Path.join(d, "a.sock"), "--metrics", metrics, "--", "node", appFixture])
    await s.waitFor(/metrics on/)
    expect(await scrape(metrics)).toContain("soad_service_state")
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    expect(Fs.existsSync(metrics)).toBe(false)
  })

  it("a file swapped in at the path while soad runs is not removed at exit", async () => {
    const d = dir()
    const metrics = Path.join(d, "metrics.sock")
    const s = soad(["-s", Path.join(d, "a.sock"), "--metrics", metrics, "--", "node", appFixture])
    await s.waitFor(/metrics on/)
    Fs.renameSync(metrics, Path.join(d, "moved.sock"))
    Fs.writeFileSync(metrics, "not soad's\n")
    s.process.kill("SIGTERM")
    expect(await s.exited).toBe(0)
    expect(Fs.readFileSync(metrics, "utf8")).toBe("not soad's\n")
  })
})

describe("listenUnix and chmodSocket arguments", () => {
  it("uid and gid are null or a whole number 0..4294967294, mode null or 0..0o7777; anything else is a TypeError", () => {
    const n = native()
    const path = Path.join(dir(), "x.sock")
    const bad: ReadonlyArray<readonly [number, unknown, number | null]> = [
      [0o600, -1, null],
      [0o600, null, 4294967295],
      [0o600, 1.5, null],
      [0o600, "0", null],
      [0o10000, null, null]
    ]
    for (const [mode, uid, gid] of bad) {
      expect(() => n.listenUnix(path, false, 0, mode, uid as number, gid)).toThrow(TypeError)
    }
    expect(Fs.existsSync(path)).toBe(false) // nothing was created
    const { fd, dev, ino } = n.listenUnix(path, false, 0, 0o600, null, null)
    try {
      expect(Fs.lstatSync(path)).toMatchObject({ dev, ino, mode: Fs.constants.S_IFSOCK | 0o600 })
      // The file at the path is not the one soad created (another inode): nothing is changed, errno ESTALE.
      let thrown: unknown
      try {
        n.chmodSocket(path, dev, ino + 1, 0o666, null, null)
      } catch (error) {
        thrown = error
      }
      expect(thrown).toMatchObject({ errno: Os.constants.errno.ESTALE })
      expect(Fs.lstatSync(path).mode & 0o7777).toBe(0o600)
      n.chmodSocket(path, dev, ino, 0o660, null, null)
      expect(Fs.lstatSync(path).mode & 0o7777).toBe(0o660)
    } finally {
      n.close(fd)
    }
  })
})
