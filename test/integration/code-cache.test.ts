/**
 * The command's code cache as installed: the first run of a `soad` whose dist/ has none makes one for its node and
 * V8 flags once it has started, the next runs use it and leave it as it is, and SOAD_CODE_CACHE=0 neither reads nor
 * writes one. Each test runs the launcher from a copy of dist/ (beside links to the build's addon and
 * node_modules), so the build's own cache is never touched.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, expect, it } from "vitest"
import { appFixture, get, killAll, root, soad, tempDirs } from "../harness.js"

const dir = tempDirs()
afterEach(killAll)

/** D/dist with the launcher and the two bundles, D/src/native and D/node_modules linked to the build's. */
const layout = () => {
  const d = dir()
  const dist = Path.join(d, "dist")
  Fs.mkdirSync(dist)
  for (const file of ["soad", "bin.cjs", "program.cjs"]) Fs.copyFileSync(Path.join(root, "dist", file), Path.join(dist, file))
  Fs.chmodSync(Path.join(dist, "soad"), 0o755)
  Fs.mkdirSync(Path.join(d, "src"))
  Fs.symlinkSync(Path.join(root, "src", "native"), Path.join(d, "src", "native"))
  Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(d, "node_modules"))
  return { d, dist, launcher: Path.join(dist, "soad") }
}

const caches = (dist: string) => Fs.readdirSync(dist).filter((name) => name.endsWith(".cache"))

/** Runs soad through the launcher until it has settled and served one request. */
const runOnce = async (launcher: string, d: string, more: Record<string, string> = {}) => {
  const socketPath = Path.join(d, "app.sock")
  const s = soad(["--log-format", "json", "--log-level", "debug", "-s", socketPath, "--", process.execPath, appFixture], {
    launcher,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/", ...more }
  })
  await s.waitFor(/"event":"settled"/, 20_000)
  const answer = await get({ socketPath })
  s.process.kill("SIGTERM")
  expect(await s.exited).toBe(0)
  return answer
}

it("the first run makes the code cache for its node and flags once started, the next uses it as it is", async () => {
  const { d, dist, launcher } = layout()
  expect(caches(dist)).toEqual([])
  expect((await runOnce(launcher, d))["listenFds"]).toBe(1)
  await new Promise((resolve) => setTimeout(resolve, 200)) // the cache is written just before `settled`
  const made = caches(dist)
  expect(made).toEqual([expect.stringMatching(new RegExp(`^program\\.cjs\\.[0-9a-f]{16}\\.${process.version.replace(/\./g, "\\.")}-${process.arch}-[0-9a-f]{8}\\.cache$`))])
  const first = Fs.statSync(Path.join(dist, made[0]!))
  expect(first.size).toBeGreaterThan(100_000)
  expect((await runOnce(launcher, d))["listenFds"]).toBe(1)
  await new Promise((resolve) => setTimeout(resolve, 200))
  expect(caches(dist)).toEqual(made)
  const second = Fs.statSync(Path.join(dist, made[0]!))
  expect([second.ino, second.mtimeMs]).toEqual([first.ino, first.mtimeMs])
})

// Once soad has settled, V8 keeps no bytecode of what only the start ran (os/gc.ts, src/native/memory.c): V8 itself
// would drop it only after 5 GCs, which a sleeping soad never has. The code cache is made before, and holds it.
it("once settled, soad has dropped the start's bytecode, and the code cache it made first holds it", async () => {
  const { d, dist, launcher } = layout()
  const sizes = Path.join(d, "bytecode.txt")
  const preload = Path.join(d, "preload.cjs")
  Fs.writeFileSync(
    preload,
    `process.on("SIGUSR2", () => require("node:fs").appendFileSync(${JSON.stringify(sizes)}, ` +
      `require("node:v8").getHeapCodeStatistics().bytecode_and_metadata_size + "\\n"))\n`
  )
  const written = () => (Fs.existsSync(sizes) ? Fs.readFileSync(sizes, "utf8").split("\n").filter((l) => l !== "").map(Number) : [])
  const s = soad(["--log-format", "json", "--log-level", "debug", "-s", Path.join(d, "app.sock"), "--", process.execPath, appFixture], {
    launcher,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/", NODE_OPTIONS: `--require ${preload}` }
  })
  await s.waitFor(/"event":"listening"/, 20_000)
  s.process.kill("SIGUSR2")
  for (let i = 0; i < 100 && written().length < 1; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  await s.waitFor(/"event":"settled"/, 20_000)
  s.process.kill("SIGUSR2")
  for (let i = 0; i < 100 && written().length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  const [started, settled] = written()
  expect(settled).toBeLessThan(started! / 2)
  const made = caches(dist)
  expect(made).toHaveLength(1)
  expect(Fs.statSync(Path.join(dist, made[0]!)).size).toBeGreaterThan(started!)
  s.process.kill("SIGTERM")
  expect(await s.exited).toBe(0)
})

it("program.cjs has no import(): a vm.Script has no loader for one (it failed GET /metrics: node:http)", () => {
  expect(Fs.readFileSync(Path.join(root, "dist", "program.cjs"), "utf8")).not.toMatch(/\bimport\(/)
})

it("SOAD_CODE_CACHE=0: soad runs without one and writes none", async () => {
  const { d, dist, launcher } = layout()
  expect((await runOnce(launcher, d, { SOAD_CODE_CACHE: "0" }))["listenFds"]).toBe(1)
  await new Promise((resolve) => setTimeout(resolve, 200))
  expect(caches(dist)).toEqual([])
})
