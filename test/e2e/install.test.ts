/**
 * The README's Install section, run as written. Its shell blocks are read from the README (each marked
 * `<!-- install-test: clone -->` or `<!-- install-test: project -->`, and every shell block of the section must be
 * marked), so the README and this test cannot drift apart:
 * - the clone block runs in a copy of this repository's files (what a clone holds: `git ls-files`, plus files not
 *   yet committed), so `npm install && npm pack` builds from scratch and `npm install -g` installs the tarball it
 *   made. A global install as root would change this machine: npm_config_prefix points npm's global prefix at a
 *   temp dir instead, which npm lays out as it lays out /usr or /usr/local (bin/soad, lib/node_modules/soad); the
 *   command runs as written.
 * - the project block runs in a new project (its own package.json) holding a copy of that tarball.
 * Then the installed command activates a real app, the README's systemd units pass `systemd-analyze verify` with
 * it, the library, Effect 3's Node runtime and its test kit run a real activation together, and the README's test
 * of an idle stop on `soad/testing` ("Testing your services") passes there as written.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, groupMembers, isRoot, root, runAsync, tempDir } from "../harness.js"
import { libraryTestBlocks } from "./readme.js"

const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
const version = (JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as { version: string }).version

/** The Install section's text, up to the next section. */
const installSection = (): string => {
  const start = readme.indexOf("\n## Install\n")
  const end = readme.indexOf("\n## ", start + 1)
  if (start < 0 || end < 0) throw new Error("README.md has no '## Install' section")
  return readme.slice(start, end)
}

/** The marked shell blocks of the Install section, by where they run. */
const installBlocks = (): Record<string, string> => {
  const section = installSection()
  const blocks: Record<string, string> = {}
  for (const match of section.matchAll(/<!-- install-test: (\w+) -->\n```sh\n([\s\S]*?)```\n/g)) {
    blocks[match[1]!] = match[2]!
  }
  // no shell block in the section escapes the test
  expect(section.split("```sh\n").length - 1).toBe(Object.keys(blocks).length)
  return blocks
}

/** The units the README shows, by name: each ```ini block starts `# /etc/systemd/system/NAME: …`. */
const readmeUnits = (): Record<string, string> => {
  const units: Record<string, string> = {}
  for (const match of readme.matchAll(/```ini\n(# \/etc\/systemd\/system\/([\w@.-]+):[\s\S]*?)```\n/g)) {
    units[match[2]!] = match[1]!
  }
  return units
}

/**
 * The environment of a user's shell: none of the npm_config_* settings `npm test` passes down, nor vitest's, nor the
 * node_modules/.bin directories npm puts first on PATH for a script.
 */
const userEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|vitest|node_env$)/i.test(key))),
  PATH: (process.env["PATH"] ?? "/usr/bin:/bin").split(":").filter((dir) => !dir.endsWith("/node_modules/.bin")).join(":")
}

let work = ""
let clone = ""
let globalPrefix = ""
let project = ""
/** PATH with the global install's bin first, as after an install under /usr or /usr/local. */
let path = ""

/** Runs a README block as written, with `sh -e` (a command that fails stops it), in `cwd`. */
const runBlock = async (block: string, cwd: string, env: NodeJS.ProcessEnv) => {
  const result = await runAsync("/bin/sh", ["-ec", block], { cwd, env, timeout: 540_000 })
  if (result.status !== 0) {
    throw new Error(`the README's commands failed (${result.status}) in ${cwd}:\n${block}\n${result.stdout}\n${result.stderr}`)
  }
}

const run = async (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = { ...userEnv, PATH: path }) => {
  const result = await runAsync(command, args, { cwd, env, timeout: 120_000 })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`)
  return result
}

/** A copy of what a clone of this repository holds, with the changes not yet committed. */
const copyRepository = (to: string) => {
  const listed = ChildProcess.spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: root,
    encoding: "utf8"
  })
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
  for (const file of listed.stdout.split("\0").filter((file) => file !== "")) {
    const from = Path.join(root, file)
    if (!Fs.existsSync(from)) continue // deleted, not yet committed
    Fs.mkdirSync(Path.dirname(Path.join(to, file)), { recursive: true })
    Fs.copyFileSync(from, Path.join(to, file))
    Fs.chmodSync(Path.join(to, file), Fs.statSync(from).mode)
  }
}

const app = `import http from "node:http"\nhttp.createServer((q, r) => r.end("hello " + process.pid)).listen({ fd: 3 })\n`

const getBody = (socketPath: string) =>
  new Promise<string>((resolve, reject) => {
    Http.get({ socketPath, path: "/" }, (response) => {
      let text = ""
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => resolve(text))
    }).on("error", reject)
  })

beforeAll(async () => {
  const blocks = installBlocks()
  expect(Object.keys(blocks).sort()).toEqual(["clone", "project"])
  work = tempDir()
  Fs.chmodSync(work, 0o755)
  clone = Path.join(work, "soad")
  globalPrefix = Path.join(work, "global")
  project = Path.join(work, "project")
  path = `${Path.join(globalPrefix, "bin")}:${userEnv["PATH"]}`
  copyRepository(clone)
  expect(Fs.existsSync(Path.join(clone, "node_modules"))).toBe(false)
  expect(Fs.existsSync(Path.join(clone, "dist"))).toBe(false)
  await runBlock(blocks["clone"]!, clone, { ...userEnv, npm_config_prefix: globalPrefix })

  Fs.mkdirSync(project)
  Fs.writeFileSync(Path.join(project, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true, type: "module" }))
  for (const file of Fs.readdirSync(clone).filter((name) => name.endsWith(".tgz"))) {
    Fs.copyFileSync(Path.join(clone, file), Path.join(project, file))
  }
  await runBlock(blocks["project"]!, project, userEnv)
}, 600_000)

afterAll(() => {
  if (work !== "") Fs.rmSync(work, { recursive: true, force: true })
})

describe("the README's install, in a clone", () => {
  it("packs soad-VERSION.tgz and installs the command as $(npm prefix -g)/bin/soad, which runs", async () => {
    expect(Fs.existsSync(Path.join(clone, `soad-${version}.tgz`))).toBe(true)
    expect(Fs.readlinkSync(Path.join(globalPrefix, "bin", "soad"))).toBe("../lib/node_modules/soad/dist/soad")
    // how the README says to find it
    const env = { ...userEnv, PATH: path, npm_config_prefix: globalPrefix }
    expect((await run("npm", ["prefix", "-g"], work, env)).stdout.trim()).toBe(globalPrefix)
    expect((await run("/bin/sh", ["-c", "command -v soad"], work)).stdout.trim()).toBe(Path.join(globalPrefix, "bin", "soad"))
    expect((await run("soad", ["--version"], work)).stdout.trim()).toBe(version)
  })

  it("the installed command activates a real app", async () => {
    const d = Path.join(work, "run")
    Fs.mkdirSync(d)
    Fs.writeFileSync(Path.join(d, "app.mjs"), app)
    const socketPath = Path.join(d, "app.sock")
    const soad = ChildProcess.spawn("soad", ["-s", socketPath, "-t", "30", "--", process.execPath, "app.mjs"], {
      cwd: d,
      env: { ...userEnv, PATH: path },
      stdio: ["ignore", "ignore", "pipe"],
      detached: true
    })
    const exited = new Promise<number | null>((resolve) => soad.on("exit", (code) => resolve(code)))
    try {
      let log = ""
      soad.stderr.on("data", (chunk) => (log += chunk))
      await eventually(() => log.includes("listening on"), 30_000, "soad to listen")
      expect(await getBody(socketPath)).toMatch(/^hello \d+$/)
      expect(log).toMatch(/app started/)
    } finally {
      process.kill(soad.pid!, "SIGTERM")
    }
    expect(await exited).toBe(0)
    await eventually(() => groupMembers(soad.pid!).length === 0, 10_000, "soad and its app to be gone")
  })

  describe("the README's systemd units", () => {
    /** Writes the README's units into `d`, with `edit` applied; a command other than soad missing here is /bin/sh. */
    const writeUnits = (d: string, edit: (text: string) => string) => {
      const units = readmeUnits()
      expect(Object.keys(units).sort()).toEqual(["blog.service", "blog.socket", "soad.service", "soad@.service"])
      for (const [name, text] of Object.entries(units)) {
        const written = edit(text).replace(
          /^(Exec\w+=)(\/\S+)/gm,
          (line, key: string, command: string) => Fs.existsSync(command) || Path.basename(command) === "soad" ? line : `${key}/bin/sh`
        )
        Fs.writeFileSync(Path.join(d, name), written)
      }
      // an instance of the template, so its specifiers (%i) are expanded
      return ["soad.service", "soad@blog.service", "blog.socket", "blog.service"].map((unit) => Path.join(d, unit))
    }

    const verify = (argv: ReadonlyArray<string>, prefix: ReadonlyArray<string> = []) => {
      const command = [...prefix, "systemd-analyze", "verify", "--man=no", ...argv]
      return ChildProcess.spawnSync(command[0]!, command.slice(1), { encoding: "utf8", cwd: work, timeout: 60_000 })
    }

    it("pass systemd-analyze verify with the installed command's path written in, as the README says to", async () => {
      const d = Path.join(work, "units-path")
      Fs.mkdirSync(d)
      const soadPath = (await run("/bin/sh", ["-c", "command -v soad"], work)).stdout.trim()
      // the README's sed: s|^ExecStart=soad |ExecStart=$(command -v soad) |
      const files = writeUnits(d, (text) => text.replace(/^ExecStart=soad /gm, `ExecStart=${soadPath} `))
      expect(Fs.readFileSync(files[0]!, "utf8")).toContain(`ExecStart=${soadPath} -c `)
      const result = verify(files)
      expect(result.error).toBeUndefined()
      expect(result.stderr).toBe("")
      expect(result.status).toBe(0)
    })

    // In a mount namespace of its own (root), soad appears in one of the directories where npm's usual global
    // prefixes put it (an overlay adds a link to the installed command), and systemd looks `soad` up itself. Outside
    // it, `soad` is nowhere on systemd's search path, and verify says so: the check has teeth.
    const overlay = `mount --make-rprivate / && mount -t overlay overlay -o "lowerdir=$0:$1" "$1" && shift && exec "$@"`
    // the probe: an empty overlay on /usr/bin in a namespace of its own (needs root and CAP_SYS_ADMIN)
    const canOverlay = isRoot && (() => {
      const empty = tempDir()
      try {
        return ChildProcess.spawnSync("unshare", ["-m", "sh", "-ec", overlay, empty, "/usr/bin", "true"]).status === 0
      } finally {
        Fs.rmSync(empty, { recursive: true, force: true })
      }
    })()
    const asWritten = "as written, soad where npm's usual prefixes put it (a mount namespace)"
    describe.skipIf(!canOverlay)(canOverlay ? asWritten : `${asWritten} [skipped: needs root and unshare -m with overlayfs]`, () => {
      it.each([
        ["/usr/bin", "prefix /usr: NodeSource's Node"],
        ["/usr/local/bin", "prefix /usr/local: Debian's npm"]
      ])("pass systemd-analyze verify with soad in %s (%s)", (bin) => {
        const d = Path.join(work, `units-${bin.replaceAll("/", "-")}`)
        const extra = Path.join(d, "extra")
        Fs.mkdirSync(extra, { recursive: true })
        Fs.symlinkSync(Fs.realpathSync(Path.join(globalPrefix, "bin", "soad")), Path.join(extra, "soad"))
        const files = writeUnits(d, (text) => text)
        const mounted = verify(files, ["unshare", "-m", "sh", "-ec", overlay, extra, bin])
        expect(mounted.error).toBeUndefined()
        expect(mounted.stderr).toBe("")
        expect(mounted.status).toBe(0)
        if (!Fs.existsSync("/usr/local/bin/soad") && !Fs.existsSync("/usr/bin/soad")) {
          expect(verify(files).stderr).toMatch(/Command soad is not executable/)
        }
      })
    })
  })
})

describe("the README's install, in a library user's project", () => {
  it("installs one effect, of Effect 3, shared by soad, the Node runtime and the test kit", async () => {
    const copies = (await run("npm", ["ls", "effect", "--all", "--parseable"], project)).stdout.trim().split("\n")
    expect(copies).toEqual([Path.join(project, "node_modules", "effect")])
    const installed = (name: string) =>
      (JSON.parse(Fs.readFileSync(Path.join(project, "node_modules", name, "package.json"), "utf8")) as { version: string }).version
    expect(installed("effect")).toMatch(/^3\./)
    expect(installed("@effect/platform-node")).toMatch(/^0\./)
    expect(installed("@effect/vitest")).toMatch(/^0\./)
    expect(installed("soad")).toBe(version)
    const manifest = JSON.parse(Fs.readFileSync(Path.join(project, "package.json"), "utf8")) as {
      dependencies: Record<string, string>
    }
    expect(manifest.dependencies["soad"]).toBe(`file:soad-${version}.tgz`)
  })

  it("npx soad runs the project's soad", async () => {
    expect((await run("npx", ["soad", "--version"], project, userEnv)).stdout.trim()).toBe(version)
  })

  it("a program on NodeRuntime.runMain and a test on @effect/vitest each activate a real app with the library", async () => {
    Fs.writeFileSync(Path.join(project, "app.mjs"), app)
    const activation = (socket: string) => `
const socketPath = Path.resolve(${JSON.stringify(socket)})
const config = ServiceConfig.make({
  listeners: [{ name: "http", address: { _tag: "Unix", path: socketPath } }],
  command: [process.execPath, "app.mjs"],
  idleTimeout: "1 minute"
})
const get = Effect.async((resume) => {
  Http.get({ socketPath, path: "/" }, (response) => {
    let body = ""
    response.on("data", (chunk) => (body += chunk))
    response.on("end", () => resume(Effect.succeed(body)))
  }).on("error", (error) => resume(Effect.fail(error)))
})
const activate = Effect.scoped(Effect.zipRight(Activator.start(config), get)).pipe(Effect.provide(SoadContext.layer))
`
    const imports = `import { Activator, ServiceConfig, SoadContext } from "soad"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import * as Path from "node:path"
`
    Fs.writeFileSync(
      Path.join(project, "main.mjs"),
      `${imports}import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
${activation("main.sock")}
NodeRuntime.runMain(Effect.flatMap(activate, (body) => Effect.sync(() => console.log("program: " + body))))
`
    )
    const program = await run(process.execPath, ["main.mjs"], project, userEnv)
    expect(program.stdout).toMatch(/^program: hello \d+$/m)

    Fs.writeFileSync(
      Path.join(project, "soad.test.mjs"),
      `${imports}import { expect, it } from "@effect/vitest"
${activation("test.sock")}
it.live("activates the app", () => Effect.map(activate, (body) => expect(body).toMatch(/^hello \\d+$/)))
`
    )
    const tested = await run("npx", ["vitest", "run", "soad.test.mjs"], project, userEnv)
    expect(tested.stdout).toMatch(/1 passed/)
  }, 120_000) // two Node programs and vitest's start on a busy machine

  it("the README's test on soad/testing passes as written", async () => {
    const blocks = libraryTestBlocks()
    for (const [name, code] of Object.entries(blocks)) {
      Fs.writeFileSync(Path.join(project, name), code)
      // (vitest colours its summary when the environment asks for it: FORCE_COLOR)
      const said = (await run("npx", ["vitest", "run", name], project, userEnv)).stdout.replace(/\x1b\[[0-9;]*m/g, "")
      expect(said).toMatch(/Tests\s+\d+ passed \(\d+\)/)
      expect(said).not.toMatch(/failed|skipped/)
    }
  }, 120_000)
})
