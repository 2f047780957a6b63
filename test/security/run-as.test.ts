/**
 * An app run as another user: its id is exactly the one configured (never root by accident), it gets that user's
 * login variables, enters its directory as that user, and dies with soad.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { alive, appFixture, describeAsRoot, eventually, get, soad, soadRun, tempDirs, writeConfig } from "../harness.js"

const dir = tempDirs()
const node = JSON.stringify(process.execPath)
const app = JSON.stringify(appFixture)

const write = writeConfig

describe("ids are whole numbers 0..4294967294, in the config file and in flags", () => {
  const badValues = ["-1", "4294967295", "1.5", "1e10", `"-1"`, `"4294967295"`, `"1e10"`]
  for (const key of ["user", "group", "socket-user", "socket-group"]) {
    it(`soad check refuses ${key} = ${badValues.join(", ")}`, () => {
      for (const value of badValues) {
        const d = dir()
        const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = [${node}, ${app}]\n${key} = ${value}\n`)
        const result = soadRun(["check", path])
        expect(result.code, `${key} = ${value}`).toBe(1)
        expect(result.stderr, `${key} = ${value}`).toMatch(
          new RegExp(`services\\.a\\.${key}: expected a (user|group) name or a [ug]id, found .*whole numbers from 0 to 4294967294`)
        )
        // and a run with it opens nothing and starts nothing
        const run = soadRun(["-c", path], { timeoutMs: 5000 })
        expect(run.code).toBe(1)
        expect(Fs.existsSync(Path.join(d, "a.sock"))).toBe(false)
      }
    })
  }

  for (const flag of ["--user", "--group", "--socket-user", "--socket-group"]) {
    it(`${flag} refuses -1, 4294967295, 1.5 and 1e10 with one line and exit 2`, () => {
      for (const value of ["-1", "4294967295", "1.5", "1e10"]) {
        const d = dir()
        const result = soadRun([`${flag}=${value}`, "-s", Path.join(d, "a.sock"), "--", process.execPath, appFixture])
        expect(result.code, `${flag}=${value}`).toBe(2)
        expect(result.stderr.trim().split("\n")).toHaveLength(1)
        expect(result.stderr).toContain(`${flag}: '${value}' is not a`)
        expect(Fs.existsSync(Path.join(d, "a.sock"))).toBe(false)
      }
    })
  }
})

describeAsRoot("an app run as another user", () => {
  it("a uid above 2^31 is applied as it is, never turned into root", async () => {
    const d = dir()
    const socketPath = Path.join(d, "a.sock")
    const s = soad(["--user", "2147483648", "--group", "2147483649", "-s", socketPath, "--", process.execPath, appFixture])
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath })
    expect(reply).toMatchObject({ uid: 2147483648, gid: 2147483649 })
  })

  it("gets the user's HOME, USER, LOGNAME and SHELL, unless the service's env sets them", async () => {
    const d = dir()
    const path = write(d, `
[services.a]
listen = ["${d}/a.sock"]
command = [${node}, ${app}]
user = "nobody"
[services.b]
listen = ["${d}/b.sock"]
command = [${node}, ${app}]
user = "nobody"
env = { HOME = "/srv/b" }
`)
    const s = soad(["-c", path], { env: { ...process.env, HOME: "/root", USER: "root", LOGNAME: "root", SHELL: "/bin/bash" } })
    await s.waitFor(/listening on .*b\.sock/)
    const a = await get({ socketPath: Path.join(d, "a.sock") })
    const nobody = Fs.readFileSync("/etc/passwd", "utf8").split("\n").find((line) => line.startsWith("nobody:"))!.split(":")
    expect(a.env).toMatchObject({ HOME: nobody[5], USER: "nobody", LOGNAME: "nobody", SHELL: nobody[6] })
    const b = await get({ socketPath: Path.join(d, "b.sock") })
    expect(b.env).toMatchObject({ HOME: "/srv/b", USER: "nobody" })
  })

  it("enters its working directory as that user: a directory only root may enter is a failed start", async () => {
    const d = dir()
    const secret = Path.join(d, "secret")
    Fs.mkdirSync(secret, { mode: 0o700 })
    const path = write(d, `[services.a]\nlisten = ["${d}/a.sock"]\ncommand = [${node}, ${app}]\nuser = "nobody"\ncwd = "${secret}"\n`)
    const s = soad(["-c", path])
    await s.waitFor(/listening on/)
    const client = get({ socketPath: Path.join(d, "a.sock") }, "/", 3000).catch((error: Error) => error)
    const line = await s.waitFor(/cannot start the app/)
    expect(line).toContain(`the working directory ${secret} cannot be entered by uid 65534 (EACCES)`)
    expect(s.count(/app started/)).toBe(0)
    await client
  })

  it("dies with soad, even though the kernel clears the parent-death signal when credentials change", async () => {
    const d = dir()
    const socketPath = Path.join(d, "a.sock")
    const s = soad(["--user", "nobody", "-s", socketPath, "--", process.execPath, appFixture])
    await s.waitFor(/listening on/)
    const reply = await get({ socketPath })
    expect(reply.uid).toBe(65534)
    const pid = reply.pid as number
    s.process.kill("SIGKILL")
    await s.exited
    await eventually(() => !alive(pid), 15_000, "the app to die with soad")
  })
})
