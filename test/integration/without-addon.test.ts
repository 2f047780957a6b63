/**
 * Native code is reached only from the OS drivers (src/os/): a program that provides its own layers never loads
 * the addon. Checked in a fresh Node process in which the addon cannot be loaded (a preload makes requiring
 * node-gyp-build or any `.node` file throw, and records the attempt): it imports every built module outside
 * dist/os/ (tsc's output, `npm run build:lib`), then runs one service on the fakes of `soad/testing` (a connection
 * starts the app, the idle time stops it), and no load of the addon was tried.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { afterAll, describe, expect, it } from "vitest"
import { root } from "../harness.js"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-without-addon-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

/** Loaded with --require: the addon cannot be loaded, and every attempt is kept in globalThis.soadAddonAttempts. */
const preload = Path.join(dir, "no-addon.cjs")
Fs.writeFileSync(
  preload,
  `const Module = require("node:module")
const attempts = (globalThis.soadAddonAttempts = [])
const refuse = (what) => {
  attempts.push(String(what))
  throw new Error("no native addon in this process: " + what)
}
const load = Module._load
Module._load = function (request, ...rest) {
  if (request === "node-gyp-build" || String(request).endsWith(".node")) refuse(request)
  return load.call(this, request, ...rest)
}
process.dlopen = (_module, filename) => refuse(filename)
`
)

const sources = (at: string): Array<string> =>
  Fs.readdirSync(at, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(Path.join(at, entry.name)) : entry.name.endsWith(".ts") ? [Path.join(at, entry.name)] : []
  )

/** The built module of every source outside src/os/, but bin.ts (it runs the command line). */
const modules = sources(Path.join(root, "src"))
  .map((file) => Path.relative(Path.join(root, "src"), file))
  .filter((file) => !file.startsWith(`os${Path.sep}`) && file !== "bin.ts" && !file.endsWith(".d.ts"))
  .map((file) => Path.join(root, "dist", file.replace(/\.ts$/, ".js")))

const dist = (file: string) => JSON.stringify(pathToFileURL(Path.join(root, "dist", file)).href)

/** Runs an ES module script in a process without the addon; the JSON it printed after `result:`. */
const run = (script: string): Record<string, unknown> => {
  const out = ChildProcess.execFileSync(
    process.execPath,
    ["--require", preload, "--input-type=module", "-e", script],
    { cwd: root, encoding: "utf8", env: { ...process.env, SOAD_MODULES: JSON.stringify(modules.map((m) => pathToFileURL(m).href)) } }
  )
  const line = out.split("\n").find((l) => l.startsWith("result:"))
  expect(line, out).toBeDefined()
  return JSON.parse(line!.slice("result:".length)) as Record<string, unknown>
}

describe("without the native addon", () => {
  it("the preload does keep the addon out (os/native.ts cannot load it)", () => {
    const result = run(`
const { native } = await import(${dist("os/native.js")})
let error
try { native() } catch (cause) { error = String(cause) }
console.log("result:" + JSON.stringify({ error, attempts: globalThis.soadAddonAttempts }))
`)
    expect(result.error).toContain("no native addon in this process")
    // os/native.ts imports node-gyp-build (bundled in the command), which here finds the addon and is refused it
    expect(result.attempts).toEqual([expect.stringMatching(/[\\/]src[\\/]native[\\/].*\.node$/)])
  })

  it("every module outside src/os/ imports, and a service runs on soad/testing's fakes: started by a connection, stopped when idle", () => {
    expect(modules.length).toBeGreaterThan(50)
    for (const module of modules) expect(Fs.existsSync(module), `${module}: run npm run build`).toBe(true)
    const result = run(`
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as TestContext from "effect/TestContext"
const modules = JSON.parse(process.env.SOAD_MODULES)
for (const module of modules) await import(module)
const { Activator, ServiceConfig } = await import(${dist("index.js")})
const { advance, settle, supervised, World } = await import(${dist("testing.js")})
const program = Effect.gen(function*() {
  const world = new World()
  const context = yield* Layer.build(world.layer)
  const config = ServiceConfig.make({
    listeners: [{ name: "soad", address: { _tag: "Unix", path: "/run/test.sock" } }],
    command: ["app"],
    idleTimeout: Duration.seconds(60)
  })
  const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
  yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
  yield* settle
  const before = world.apps.length
  yield* world.connect(listeners[0].fd)
  yield* settle
  const started = world.apps.length === 1 && world.apps[0].running
  yield* advance("60 seconds")
  return { before, started, signals: world.apps[0].signals, running: world.apps[0].running }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext), Logger.withMinimumLogLevel(LogLevel.None))
const result = await Effect.runPromise(program)
console.log("result:" + JSON.stringify({ ...result, imported: modules.length, attempts: globalThis.soadAddonAttempts }))
`)
    expect(result).toEqual({
      before: 0,
      started: true,
      signals: ["SIGTERM"],
      running: false,
      imported: modules.length,
      attempts: []
    })
  })
})
