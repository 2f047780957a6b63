/**
 * The `soad` command's launcher (dist/soad, from src/soad.sh) finds node where systemd's PATH has none: a Node of
 * nvm or unpacked in /opt sits in PREFIX/bin beside the soad a global install linked there, and systemd gives its
 * services PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin. Here node is /usr/bin/node, so each test builds
 * a global install's layout in a temp dir and runs the launcher with a PATH that holds only the tools it uses.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { root, tempDirs } from "../harness.js"

const dir = tempDirs()
const version = (JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as { version: string }).version

/**
 * PREFIX/lib/node_modules/soad/dist holds a copy of the launcher and this build's bin.cjs (a link: node runs the
 * file it resolves to, which finds the native addon of this build); PREFIX/bin/soad links to the launcher, as
 * `npm install -g` makes it. `withNode` also puts a node in PREFIX/bin. A tools dir holds what the launcher runs
 * besides node (readlink, dirname), so PATH can be made to lack node.
 */
const layout = (withNode: boolean) => {
  const d = dir()
  const prefix = Path.join(d, "prefix")
  const dist = Path.join(prefix, "lib", "node_modules", "soad", "dist")
  Fs.mkdirSync(dist, { recursive: true })
  Fs.copyFileSync(Path.join(root, "dist", "soad"), Path.join(dist, "soad"))
  Fs.chmodSync(Path.join(dist, "soad"), 0o755)
  Fs.symlinkSync(Path.join(root, "dist", "bin.cjs"), Path.join(dist, "bin.cjs"))
  Fs.mkdirSync(Path.join(prefix, "bin"))
  Fs.symlinkSync("../lib/node_modules/soad/dist/soad", Path.join(prefix, "bin", "soad"))
  if (withNode) Fs.symlinkSync(process.execPath, Path.join(prefix, "bin", "node"))
  const tools = Path.join(d, "tools")
  Fs.mkdirSync(tools)
  for (const tool of ["readlink", "dirname"]) {
    const found = ["/usr/bin", "/bin"].map((bin) => Path.join(bin, tool)).find((path) => Fs.existsSync(path))!
    Fs.symlinkSync(found, Path.join(tools, tool))
  }
  return { prefix, tools, launcher: Path.join(dist, "soad"), linked: Path.join(prefix, "bin", "soad") }
}

/** Runs `command --version` as systemd or a shell would (exec, its `#!/bin/sh` line), with only PATH and HOME set. */
const run = (command: string, path: string) =>
  ChildProcess.spawnSync(command, ["--version"], {
    encoding: "utf8",
    timeout: 30_000,
    env: { PATH: path, HOME: process.env["HOME"] ?? "/" }
  })

describe("the launcher", () => {
  it("runs the node beside the link a global install made, when PATH has none", () => {
    const { linked, tools } = layout(true)
    expect(Fs.existsSync(Path.join(tools, "node"))).toBe(false)
    const result = run(linked, tools)
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe(version)
    expect(result.status).toBe(0)
  })

  it("runs the node of the install's prefix when started by its own path (PREFIX/lib/node_modules/soad/dist/soad)", () => {
    const { launcher, tools } = layout(true)
    const result = run(launcher, tools)
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe(version)
    expect(result.status).toBe(0)
  })

  it("finds bin.cjs beside itself when started as `sh soad` from its own directory (a $0 without a slash)", () => {
    const { launcher } = layout(true)
    const result = ChildProcess.spawnSync("sh", ["soad", "--version"], {
      encoding: "utf8",
      timeout: 30_000,
      cwd: Path.dirname(launcher),
      env: { PATH: `${Path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: process.env["HOME"] ?? "/" }
    })
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe(version)
    expect(result.status).toBe(0)
  })

  it("prefers the node on PATH to the one beside it", () => {
    const { linked, prefix, tools } = layout(false)
    // beside it, a "node" that is not one
    Fs.writeFileSync(Path.join(prefix, "bin", "node"), "#!/bin/sh\necho 'the node beside it' >&2\nexit 3\n", { mode: 0o755 })
    const result = run(linked, `${tools}:${Path.dirname(process.execPath)}`)
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe(version)
    expect(result.status).toBe(0)
  })

  it("passes over a node older than 20 first on PATH for a newer one later on PATH", () => {
    const { linked, tools } = layout(false)
    Fs.writeFileSync(Path.join(tools, "node"), "#!/bin/sh\necho v18.20.4\n", { mode: 0o755 })
    const result = run(linked, `${tools}:${Path.dirname(process.execPath)}`)
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe(version)
    expect(result.status).toBe(0)
  })

  it("passes over a node older than 20 on PATH for the one beside it", () => {
    const { linked, tools } = layout(true)
    // Debian 12's node is 18: a "node" that says so (and says only that, whatever it is asked)
    Fs.writeFileSync(Path.join(tools, "node"), "#!/bin/sh\necho v18.20.4\n", { mode: 0o755 })
    const result = run(linked, tools)
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe(version)
    expect(result.status).toBe(0)
  })

  it("runs a run under soad's V8 flags, and a control command, --version or help under Node's own", () => {
    const { linked, tools } = layout(false)
    // A node that prints what it was asked to run: the flags before bin.cjs, then the line.
    Fs.writeFileSync(
      Path.join(tools, "node"),
      `#!/bin/sh\nif [ "$1" = --version ]; then echo v20.0.0; exit 0; fi\necho "$@"\n`,
      { mode: 0o755 }
    )
    const flagsOf = (...args: ReadonlyArray<string>): string => {
      const result = ChildProcess.spawnSync(linked, args, { encoding: "utf8", timeout: 30_000, env: { PATH: tools } })
      expect(result.status).toBe(0)
      const words = result.stdout.trim().split(" ")
      const script = words.findIndex((word) => word.endsWith("/bin.cjs"))
      expect(script).toBeGreaterThanOrEqual(0)
      expect(words.slice(script + 1)).toEqual(args)
      return words.slice(0, script).join(" ")
    }
    const soads = "--lite-mode --no-expose-wasm --single-threaded-gc"
    // runs, and what the full command tree parses
    expect(flagsOf("-s", "/run/app.sock", "--", "app")).toBe(soads)
    expect(flagsOf("-c", "soad.toml")).toBe(soads)
    expect(flagsOf("-c", "status")).toBe(soads) // a config file named status
    expect(flagsOf("--name", "web", "-s", "/run/app.sock", "--", "status")).toBe(soads)
    expect(flagsOf("check", "-c", "soad.toml")).toBe(soads)
    expect(flagsOf()).toBe(soads)
    // the light path's commands
    for (const line of [["status"], ["status", "--json"], ["logs", "-f", "web"], ["wake", "web"], ["stop", "web"], ["reload"], ["--version"], ["--help"], ["-h"], ["restart", "--help"]]) {
      expect(flagsOf(...line)).toBe("")
    }
    expect(flagsOf("--name", "web", "status")).toBe("")
    expect(flagsOf("--control=/run/soad.sock", "wake", "blog")).toBe("")
    expect(flagsOf("-c", "soad.toml", "reload")).toBe("")
  })

  const advice =
    "install Node.js 20 or newer, or put the directory of its node in PATH (in a systemd unit: Environment=PATH=/that/dir:/usr/bin:/bin)"

  it("says in one line what is missing and what to do when no node is found, and exits 127", () => {
    const { linked, tools } = layout(false)
    const result = run(linked, tools)
    expect(result.stdout).toBe("")
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toBe(`soad: cannot find node (Node.js 20 or newer) on PATH=${tools} nor beside ${linked}: ${advice}`)
    expect(result.status).toBe(127)
  })

  it("names each node it found too old, with its version, and exits 127", () => {
    const { linked, tools } = layout(false)
    Fs.writeFileSync(Path.join(tools, "node"), "#!/bin/sh\necho v18.20.4\n", { mode: 0o755 })
    const result = run(linked, tools)
    expect(result.stdout).toBe("")
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toBe(
      `soad: cannot find node (Node.js 20 or newer) on PATH=${tools} nor beside ${linked}; ${tools}/node is v18.20.4: ${advice}`
    )
    expect(result.status).toBe(127)
  })
})
