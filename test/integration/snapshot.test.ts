/**
 * The startup snapshot (cli/snapshot.ts): `SOAD_SNAPSHOT=1 soad …` starts from a V8 snapshot of the program that the
 * build made, or that the `soad` script makes for the node that runs it, and serves as soad does; without it, or when
 * node would refuse it, soad starts as ES modules. The audit of module evaluation (cli/snapshotAudit.mjs) refuses a
 * module that reads its process while it is evaluated, which every restored soad would otherwise share.
 *
 * Each test runs the launcher from a copy of dist/ (its snapshot made there), so that the build's dist/ is never
 * changed under other test files.
 */
import * as esbuild from "esbuild"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Audit from "../../src/cli/snapshotAudit.mjs"
import { appFixture, get, root, soad, tempDirs } from "../harness.js"

const dir = tempDirs()
const version = (JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as { version: string }).version
const thisNode = `${process.version} ${Fs.realpathSync(process.execPath)}`

/**
 * D/dist: the launcher and the snapshot's program copied, bin.js linked (node runs the file it resolves to, so
 * the addon and the chunks are the build's); D/src/cli/snapshot.mjs linked, which the launcher runs to make a
 * snapshot. `withSnapshot` copies the build's snapshot and its key too.
 */
const layout = (withSnapshot: boolean) => {
  const d = dir()
  const dist = Path.join(d, "dist")
  Fs.mkdirSync(dist)
  Fs.mkdirSync(Path.join(d, "src", "cli"), { recursive: true })
  for (const file of ["soad", "snapshot.cjs", ...(withSnapshot ? ["snapshot.blob", "snapshot.key"] : [])]) {
    Fs.copyFileSync(Path.join(root, "dist", file), Path.join(dist, file))
  }
  Fs.chmodSync(Path.join(dist, "soad"), 0o755)
  Fs.symlinkSync(Path.join(root, "dist", "bin.js"), Path.join(dist, "bin.js"))
  Fs.symlinkSync(Path.join(root, "src", "cli", "snapshot.mjs"), Path.join(d, "src", "cli", "snapshot.mjs"))
  return { d, dist, launcher: Path.join(dist, "soad") }
}

/** The environment of a launcher run: PATH and HOME, and these. */
const envWith = (more: Record<string, string>): NodeJS.ProcessEnv => ({
  PATH: process.env["PATH"] ?? "/usr/bin:/bin",
  HOME: process.env["HOME"] ?? "/",
  ...more
})

const runLauncher = (launcher: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  ChildProcess.spawnSync(launcher, args, { encoding: "utf8", env, timeout: 60_000 })

/** Starts soad through `launcher` on a UNIX socket in `d` with the test app; says whether it came from the snapshot. */
const serve = async (launcher: string, d: string, env: NodeJS.ProcessEnv) => {
  const socketPath = Path.join(d, "app.sock")
  const s = soad(["--log-format", "json", "--log-level", "debug", "-s", socketPath, "--", process.execPath, appFixture], {
    launcher,
    env
  })
  await s.waitFor(/"event":"listening"/, 20_000)
  const answer = await get({ socketPath })
  const settled = await s.waitFor(/"event":"settled"/, 20_000)
  s.process.kill("SIGTERM")
  return { answer, snapshot: (JSON.parse(settled) as { snapshot?: boolean }).snapshot, code: await s.exited, output: s.output() }
}

describe.runIf(process.platform === "linux")("the startup snapshot", () => {
  it("SOAD_SNAPSHOT=1 starts soad from the build's snapshot: it serves, a connection starts the app on the socket, SIGTERM ends it", async () => {
    const { d, launcher } = layout(true)
    const ran = await serve(launcher, d, envWith({ SOAD_SNAPSHOT: "1" }))
    expect(ran.snapshot).toBe(true)
    expect(ran.answer["listenFds"]).toBe(1)
    expect(ran.code).toBe(0)
    expect(ran.output).not.toMatch(/startup snapshot/)
  })

  it("without SOAD_SNAPSHOT, soad starts as ES modules (the snapshot costs memory)", async () => {
    const { d, launcher } = layout(true)
    const ran = await serve(launcher, d, envWith({}))
    expect(ran.snapshot).toBe(false)
    expect(ran.answer["listenFds"]).toBe(1)
  })

  it("makes the snapshot for the node that runs it when there is none or it is another node's, then starts from it", async () => {
    for (const key of [undefined, "v20.0.0 /opt/another/node"]) {
      const { d, dist, launcher } = layout(false)
      if (key !== undefined) {
        Fs.copyFileSync(Path.join(root, "dist", "snapshot.blob"), Path.join(dist, "snapshot.blob"))
        Fs.writeFileSync(Path.join(dist, "snapshot.key"), `${key}\n`)
      }
      const ran = await serve(launcher, d, envWith({ SOAD_SNAPSHOT: "1" }))
      expect(ran.snapshot).toBe(true)
      expect(Fs.readFileSync(Path.join(dist, "snapshot.key"), "utf8")).toBe(`${thisNode}\n`)
      expect(Fs.readdirSync(dist).sort()).toEqual(["bin.js", "snapshot.blob", "snapshot.cjs", "snapshot.key", "soad"])
    }
  })

  it("starts without it, saying why in one line, where node would refuse it or none can be made", () => {
    // NODE_OPTIONS may hold V8 flags, under which node exits rather than restore a snapshot.
    const optioned = layout(true)
    const withOptions = runLauncher(optioned.launcher, ["--version"], envWith({ SOAD_SNAPSHOT: "1", NODE_OPTIONS: "--max-old-space-size=100" }))
    expect(withOptions.stdout.trim()).toBe(version)
    expect(withOptions.status).toBe(0)
    expect(withOptions.stderr).toBe(
      "soad: not starting from the startup snapshot (SOAD_SNAPSHOT=1): NODE_OPTIONS is set, and node refuses a snapshot under other V8 flags\n"
    )
    // Another node's snapshot, and nothing to make one from: it is not used.
    const { dist, launcher } = layout(false)
    Fs.copyFileSync(Path.join(root, "dist", "snapshot.blob"), Path.join(dist, "snapshot.blob"))
    Fs.writeFileSync(Path.join(dist, "snapshot.key"), "v20.0.0 /opt/another/node\n")
    Fs.rmSync(Path.join(dist, "snapshot.cjs"))
    const other = runLauncher(launcher, ["--version"], envWith({ SOAD_SNAPSHOT: "1" }))
    expect(other.stdout.trim()).toBe(version)
    expect(other.status).toBe(0)
    expect(other.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^soad: no startup snapshot for \S+node \(v\d+\.\d+\.\d+\) in .*dist, and none could be made there \(SOAD_SNAPSHOT=1\): starting without it$/)
    ])
    expect(Fs.readFileSync(Path.join(dist, "snapshot.key"), "utf8")).toBe("v20.0.0 /opt/another/node\n")
  })
})

describe("the snapshot's audit of module evaluation", () => {
  /** Bundles D/src/entry.ts, which imports `modules` (name → source, in D/src), and audits it. */
  const audit = async (modules: Record<string, string>) => {
    const d = dir()
    Fs.mkdirSync(Path.join(d, "src"))
    for (const [name, source] of Object.entries(modules)) Fs.writeFileSync(Path.join(d, "src", name), source)
    Fs.writeFileSync(
      Path.join(d, "src", "entry.ts"),
      Object.keys(modules).map((name, i) => `import * as M${i} from "./${name}"\n`).join("") +
        `import * as V8 from "node:v8"\nV8.startupSnapshot.setDeserializeMainFunction(() => console.log(${
          Object.keys(modules).map((_, i) => `M${i}`).join(", ")
        }))\n`
    )
    return Audit.audit(
      esbuild,
      { bundle: true, platform: "node", format: "cjs", entryPoints: [Path.join(d, "src", "entry.ts")], absWorkingDir: d, nodePaths: [Path.join(root, "node_modules")], logLevel: "warning" },
      Path.join(root, "dist"),
      d
    )
  }

  it("refuses what a module reads of its process while it is evaluated, naming the module and what it read", async () => {
    const wrong = await audit({
      "env.ts": `export const home = process.env.HOME\n`,
      "uid.ts": `export const root = process.getuid?.() === 0\n`,
      "pid.ts": `export const name = "x" + process.pid\n`,
      "time.ts": `export const started = Date.now()\n`,
      "host.ts": `import * as Os from "node:os"\nexport const host = Os.hostname()\n`
    })
    expect(wrong.map(({ read, module }) => `${read} in ${module}`).sort()).toEqual([
      "Date.now in src/time.ts",
      "os.hostname in src/host.ts",
      "process.env.HOME in src/env.ts",
      "process.getuid in src/uid.ts",
      "process.pid in src/pid.ts"
    ])
  }, 60_000)

  it("lets a module read its process when it is used, and Effect's own reads that soad makes again for each run", async () => {
    const wrong = await audit({
      "lazy.ts": `export const home = () => process.env.HOME\nexport const root = { get root() { return process.getuid?.() === 0 } }\n`,
      "effect.ts": `import * as Clock from "effect/Clock"\nimport * as Effect from "effect/Effect"\nexport const clock = Clock.make()\nexport const one = Effect.runSync(Effect.succeed(1))\n`
    })
    expect(wrong).toEqual([])
  }, 60_000)
})
