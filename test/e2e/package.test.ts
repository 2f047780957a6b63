/**
 * The published package: `npm pack`, then install the tarball into a fresh project with install scripts
 * disabled, and use it as a command (`npx soad`) and as a library from a strict TypeScript program, and its test kit
 * (`soad/testing`: the README's example type-checks; the fakes run an idle stop under TestClock without loading the
 * native addon). A second
 * project installs the tarball alone, as a user of the command does: no `effect` (an optional peer of the library;
 * the command bundles what it needs), and then no native binding either: help, version, check and the control
 * subcommands still work, and a run says in one line what is missing and why.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appFixture, eventually, groupMembers, killAll, root, runAsync, soad, tempDir } from "../harness.js"
import { libraryTestBlocks } from "./readme.js"

const ownPackage = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as {
  readonly version: string
  readonly devDependencies: Record<string, string>
}
const installed = (name: string) =>
  (JSON.parse(Fs.readFileSync(Path.join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version

let work = ""
let project = ""
let bare = ""
let tarball = ""

/** The environment of a user's shell: none of the npm_config_* settings `npm test` passes down from this repo. */
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_"))
)

const run = async (command: string, args: ReadonlyArray<string>, cwd: string, timeout = 180_000) => {
  const result = await runAsync(command, args, { cwd, timeout, env: userEnv })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`)
  }
  return result
}

beforeAll(async () => {
  work = tempDir()
  project = Path.join(work, "project")
  Fs.mkdirSync(project)
  // The build is the one `npm test` just made; packing runs no script again.
  const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], root)
  const info = (JSON.parse(packed.stdout) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>)[0]!
  tarball = Path.join(work, info.filename)
  Fs.writeFileSync(Path.join(work, "files.json"), JSON.stringify(info))
  Fs.writeFileSync(
    Path.join(project, "package.json"),
    JSON.stringify({ name: "uses-soad", version: "1.0.0", private: true, type: "module" })
  )
  // What a library user does (`npm install soad effect`); no install script may run.
  await run("npm", [
    "install",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--prefer-offline",
    tarball,
    `effect@${installed("effect")}`,
    `typescript@${installed("typescript")}`,
    `@types/node@${installed("@types/node")}`,
    // the test kit the README's soad/testing example is written for
    `@effect/vitest@${installed("@effect/vitest")}`,
    `vitest@${installed("vitest")}`
  ], project)
  // What a user of the command alone does.
  bare = Path.join(work, "bare")
  Fs.mkdirSync(bare)
  Fs.writeFileSync(Path.join(bare, "package.json"), JSON.stringify({ name: "uses-soad-command", version: "1.0.0", private: true }))
  await run("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline", tarball], bare)
}, 240_000)

afterAll(() => {
  killAll()
  if (work !== "") Fs.rmSync(work, { recursive: true, force: true })
})

describe("the package", () => {
  it("holds the compiled library with types, the native sources and a linux-x64 prebuild, and no install script", async () => {
    const info = JSON.parse(Fs.readFileSync(Path.join(work, "files.json"), "utf8")) as {
      size: number
      files: Array<{ path: string }>
    }
    const files = info.files.map((file) => file.path)
    // every native source (to build from source elsewhere), the prebuilt addon and its helper programs
    const native = Path.join(root, "src", "native")
    const sources = [
      ...Fs.readdirSync(native).filter((name) => /\.[ch]$/.test(name)).map((name) => `src/native/${name}`),
      ...Fs.readdirSync(Path.join(native, "helper")).filter((name) => name.endsWith(".c")).map((name) => `src/native/helper/${name}`)
    ]
    expect(sources.length).toBeGreaterThan(10)
    for (
      const file of [
        "dist/bin.cjs",
        "dist/program.cjs",
        "dist/help.json",
        "dist/soad",
        "dist/index.js",
        "dist/index.d.ts",
        "dist/testing.js",
        "dist/testing.d.ts",
        ...sources,
        "src/native/binding.gyp",
        "src/native/prebuilds/linux-x64/node.node",
        "src/native/prebuilds/linux-x64/soad-sentinel",
        "src/native/prebuilds/linux-x64/soad-guard",
        "UNLICENSE",
        "README.md"
      ]
    ) {
      expect(files).toContain(file)
    }
    // the command is bin.cjs (the light path) and program.cjs (the full command tree, loaded only for a run); a code
    // cache is made for the node that runs it, never shipped
    expect(files.some((file) => file.startsWith("test/") || file.includes("/build/") || file === "dist/bench.js")).toBe(false)
    expect(files.some((file) => file.endsWith(".cache") || file.startsWith("dist/chunks/") || file === "dist/bin.js")).toBe(false)
    const manifest = JSON.parse(Fs.readFileSync(Path.join(project, "node_modules", "soad", "package.json"), "utf8")) as {
      scripts?: Record<string, string>
      peerDependencies?: Record<string, string>
      peerDependenciesMeta?: Record<string, { optional?: boolean }>
    }
    // no script runs at install, nor `prepare` (npm runs it for a git dependency and on `npm install` in a clone)
    for (const hook of ["preinstall", "install", "postinstall", "prepare"]) expect(manifest.scripts?.[hook]).toBeUndefined()
    expect(manifest.peerDependencies?.effect).toBeDefined()
    expect(manifest.peerDependenciesMeta?.effect?.optional).toBe(true)
    expect(Fs.existsSync(Path.join(project, "node_modules", "effect", "package.json"))).toBe(true)
    const dependencies = (await run("npm", ["ls", "--all", "--parseable", "--omit=dev"], project)).stdout.trim().split("\n").length - 1
    console.log(`package: ${info.files.length} files, ${(info.size / 1024).toFixed(0)} kB packed; ${dependencies} packages installed in the project`)
  })

  it("npx soad --help and --version work", async () => {
    const help = await run("npx", ["--no-install", "soad", "--help"], project)
    expect(help.stdout).toContain("--time-until-stop")
    const version = await run("npx", ["--no-install", "soad", "--version"], project)
    expect(version.stdout.trim()).toBe(ownPackage.version)
  })

  it("npx soad activates a real app", async () => {
    Fs.writeFileSync(
      Path.join(project, "app.mjs"),
      `import http from "node:http"\nhttp.createServer((q, r) => r.end("hello " + process.pid)).listen({ fd: 3 })\n`
    )
    const socketPath = Path.join(project, "app.sock")
    const soad = ChildProcess.spawn("npx", ["--no-install", "soad", "-s", socketPath, "-t", "30", "--", process.execPath, "app.mjs"], {
      cwd: project,
      env: userEnv,
      stdio: ["ignore", "ignore", "pipe"],
      detached: true // its own process group: npx does not pass SIGTERM on to the command it runs
    })
    try {
      let log = ""
      soad.stderr.on("data", (chunk) => (log += chunk))
      for (let i = 0; i < 200 && !log.includes("listening on"); i++) await new Promise((r) => setTimeout(r, 50))
      const body = await new Promise<string>((resolve, reject) => {
        Http.get({ socketPath, path: "/" }, (response) => {
          let text = ""
          response.on("data", (chunk) => (text += chunk))
          response.on("end", () => resolve(text))
        }).on("error", reject)
      })
      expect(body).toMatch(/^hello \d+$/)
    } finally {
      const exited = new Promise((resolve) => soad.on("exit", resolve))
      process.kill(-soad.pid!, "SIGTERM") // npx, the launcher and soad
      await exited
      await eventually(() => groupMembers(soad.pid!).length === 0, 10_000, "npx soad and its app to be gone")
    }
  })

  it("a strict TypeScript program imports the library, type-checks and runs an activator in its own scope", async () => {
    Fs.writeFileSync(
      Path.join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          exactOptionalPropertyTypes: true,
          types: ["node"],
          outDir: "out"
        },
        include: ["main.ts"]
      })
    )
    Fs.writeFileSync(
      Path.join(project, "main.ts"),
      `import { Activator, ServiceConfig, SoadContext } from "soad"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import * as Path from "node:path"

const socketPath = Path.resolve("lib.sock")
const config: ServiceConfig.ServiceConfig = ServiceConfig.make({
  listeners: [{ name: "http", address: { _tag: "Unix", path: socketPath } }],
  command: [process.execPath, "app.mjs"],
  idleTimeout: "1 minute"
})

const get = Effect.async<string, Error>((resume) => {
  Http.get({ socketPath, path: "/" }, (response) => {
    let body = ""
    response.on("data", (chunk) => (body += chunk))
    response.on("end", () => resume(Effect.succeed(body)))
  }).on("error", (error) => resume(Effect.fail(error)))
})

const program = Effect.scoped(
  Effect.gen(function*() {
    yield* Activator.start(config)
    const body = yield* get
    console.log("library: " + body)
  })
).pipe(Effect.provide(SoadContext.layer))

Effect.runPromise(program).then(() => console.log("library: scope closed"))
`
    )
    await run("npx", ["--no-install", "tsc", "-p", "."], project)
    const result = await run(process.execPath, ["out/main.js"], project, 30_000)
    // (Effect's default logger writes its lines to stdout as well)
    expect(result.stdout).toMatch(/^library: hello \d+$/m)
    expect(result.stdout).toMatch(/^library: scope closed$/m)
    expect(result.stdout.indexOf("library: hello")).toBeLessThan(result.stdout.indexOf("library: scope closed"))
    expect(Fs.existsSync(Path.join(project, "lib.sock"))).toBe(false)
  }, 120_000) // tsc alone took 25 s of the default 30 here with a load average of 10

  describe("soad/testing", () => {
    /** Makes the addon's loading fail loudly: node-gyp-build loads it through process.dlopen. */
    const trap = `process.dlopen = (_module, file) => { throw new Error("the native addon was loaded: " + file) }\n`

    it("depends on effect alone: no test runner, nothing else at run time", () => {
      const dist = Path.join(project, "node_modules", "soad", "dist")
      const files = ["testing.js", ...Fs.readdirSync(Path.join(dist, "testing")).filter((name) => name.endsWith(".js")).map((name) => `testing/${name}`)]
      const outside = new Set<string>()
      for (const file of files) {
        const text = Fs.readFileSync(Path.join(dist, file), "utf8")
        for (const match of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gm)) {
          if (!/^(\.\.?\/|node:|effect\/)/.test(match[1]!)) outside.add(match[1]!)
        }
      }
      expect([...outside]).toEqual([])
      expect(files).toContain("testing/world.js")
      const manifest = JSON.parse(Fs.readFileSync(Path.join(project, "node_modules", "soad", "package.json"), "utf8")) as {
        dependencies?: Record<string, string>
      }
      expect(Object.keys(manifest.dependencies ?? {}).filter((name) => /vitest/.test(name))).toEqual([])
    })

    it("the README's example and a program of its own type-check in strict mode against the package's types", async () => {
      const blocks = libraryTestBlocks()
      for (const [name, code] of Object.entries(blocks)) Fs.writeFileSync(Path.join(project, name), code)
      Fs.writeFileSync(Path.join(project, "trap.mjs"), trap)
      // An idle stop whose app ignores SIGTERM, without a test runner: TestContext gives the TestClock.
      Fs.writeFileSync(
        Path.join(project, "fake.ts"),
        `import { Activator, ServiceConfig } from "soad"
import { advance, captureEvents, type FakeApp, settle, supervised, World } from "soad/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"

const config = ServiceConfig.make({
  listeners: ["http=/run/fake.sock"],
  command: ["app"],
  idleTimeout: "1 minute",
  stopTimeout: "10 seconds"
})
const world = new World({ armable: false })
world.onTerm = "ignore"
const { events, layer } = captureEvents()

const program = Effect.gen(function*() {
  yield* supervised(Activator.start(config))
  yield* world.connect(world.listeners[0]!.fd)
  yield* settle
  const app: FakeApp = world.running!
  yield* advance("60 seconds")
  const atIdle = [...app.signals]
  yield* advance("9999 millis")
  const before = [...app.signals]
  yield* advance("1 millis")
  const kill = events.find((event) => event.name === "kill")
  return { atIdle, before, after: [...app.signals], running: app.running, at: yield* TestClock.currentTimeMillis, kill: kill?.fields }
}).pipe(Effect.scoped, Effect.provide(Layer.merge(world.layer, layer)), Effect.provide(TestContext.TestContext))

Effect.runPromise(program).then((result) => console.log(JSON.stringify(result)))
`
      )
      Fs.writeFileSync(
        Path.join(project, "tsconfig.testing.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            exactOptionalPropertyTypes: true,
            types: ["node"],
            outDir: "out-testing"
          },
          include: ["fake.ts", ...Object.keys(blocks)]
        })
      )
      await run("npx", ["--no-install", "tsc", "-p", "tsconfig.testing.json"], project)
      expect(Fs.existsSync(Path.join(project, "out-testing", "fake.js"))).toBe(true)
    }, 120_000) // tsc on a busy machine

    it("runs an idle stop to the millisecond on the fakes, and never loads the native addon", async () => {
      // the trap has teeth: a live layer does load it
      const live = ChildProcess.spawnSync(
        process.execPath,
        ["--import", "./trap.mjs", "--input-type=module", "-e", `import { SocketService } from "soad"; import * as Effect from "effect/Effect"; Effect.runSync(SocketService.make)`],
        { cwd: project, encoding: "utf8", timeout: 30_000, env: userEnv }
      )
      expect(live.status).not.toBe(0)
      expect(live.stderr).toContain("the native addon was loaded")

      const result = await run(process.execPath, ["--import", "./trap.mjs", "out-testing/fake.js"], project, 30_000)
      expect(JSON.parse(result.stdout)).toEqual({
        atIdle: ["SIGTERM"], // 60 s after the start
        before: ["SIGTERM"],
        after: ["SIGTERM", "SIGKILL"], // the stop timeout, 10 s after SIGTERM
        running: false,
        at: 70_000,
        kill: { pid: 1000, stop_timeout_ms: 10_000, service: "app" }
      })
    })
  })

  describe("the command alone (no effect installed)", () => {
    const soadIn = (cwd: string, args: ReadonlyArray<string>) =>
      ChildProcess.spawnSync("npx", ["--no-install", "soad", ...args], { cwd, encoding: "utf8", timeout: 30_000, env: userEnv })

    it("installs without effect, and npx soad --help and --version work", () => {
      expect(Fs.existsSync(Path.join(bare, "node_modules", "soad", "package.json"))).toBe(true)
      expect(Fs.existsSync(Path.join(bare, "node_modules", "effect"))).toBe(false)
      expect(soadIn(bare, ["--help"]).stdout).toContain("--time-until-stop")
      expect(soadIn(bare, ["--version"]).stdout.trim()).toBe(ownPackage.version)
    })

    it("without the native binding: help, version, check and the control subcommands work; a run says what is missing and why", async () => {
      // fault: no addon for this platform (here: the prebuilds removed, nothing built from source)
      Fs.rmSync(Path.join(bare, "node_modules", "soad", "src", "native", "prebuilds"), { recursive: true, force: true })
      expect(Fs.existsSync(Path.join(bare, "node_modules", "soad", "src", "native", "build"))).toBe(false)

      const help = soadIn(bare, ["--help"])
      expect(help.status).toBe(0)
      expect(help.stdout).toContain("--time-until-stop")
      expect(soadIn(bare, ["--version"]).stdout.trim()).toBe(ownPackage.version)
      const config = Path.join(bare, "apps.toml")
      Fs.writeFileSync(config, `[services.blog]\nlisten = ["${Path.join(bare, "blog.sock")}"]\ncommand = ["${process.execPath}"]\n`)
      const checked = soadIn(bare, ["check", config])
      expect(checked.stderr).toBe("")
      expect(checked.stdout).toContain(`${config}: OK`)
      expect(checked.status).toBe(0)

      // a soad with its binding (this repository's build) answers the control subcommands of the one without
      const control = Path.join(bare, "control.sock")
      const s = soad(["-s", Path.join(bare, "app.sock"), "-t", "60", "--control", control, "--", process.execPath, appFixture])
      await s.waitFor(/listening on/)
      await eventually(() => Fs.existsSync(control), 15_000, "the control socket")
      const status = soadIn(bare, ["status", "--control", control])
      expect(status.stderr).toBe("")
      expect(status.stdout).toMatch(/^node\s+stopped\s/m)
      expect(soadIn(bare, ["wake", "node", "--control", control]).stdout.trim()).toBe("node: starting")
      await s.waitFor(/app started/)
      const logs = soadIn(bare, ["logs", "node", "--control", control])
      expect(logs.stderr).toBe("")
      expect(logs.status).toBe(0)
      expect(soadIn(bare, ["sleep", "node", "--control", control]).stdout.trim()).toBe("node: stopped")
      s.process.kill("SIGTERM")
      await s.exited

      // a run needs the binding: one line that says what is missing, the loader's own words, and what to do
      const ran = soadIn(bare, ["-s", Path.join(bare, "run.sock"), "--", process.execPath, appFixture])
      expect(ran.status).toBe(1)
      const lines = ran.stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(
        new RegExp(`^soad: cannot load the native binding for ${process.platform}-${process.arch} \\(Node [0-9.]+\\) from \\S+: `)
      )
      expect(lines[0]).toContain("No native build was found") // node-gyp-build's error
      expect(lines[0]).toContain("npx node-gyp rebuild --directory=")
    })
  })
})
