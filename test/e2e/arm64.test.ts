/**
 * The linux-arm64 prebuild (cross-compiled by `npm run build:native` with gcc-aarch64-linux-gnu) loads and works
 * on arm64: an arm64 Node (Debian's, fetched by .ci/arm64-node, never installed over the machine's) runs under
 * qemu-aarch64-static, loads src/native/prebuilds/linux-arm64/node.node and uses it: a UNIX listener, connection
 * counting, a spawn, the arm64 sentinel helper, which exits 2 for a bad argument, and an armed start (the cold path). The fault it catches: a
 * prebuild for the wrong machine, one that needs a library or symbol the arm64 system lacks, or a spawn (fork, the
 * only way on aarch64) that crashes. It runs only where qemu-aarch64-static, the prebuild
 * and the arm64 Node exist, and otherwise is skipped with the reason in its name.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { root } from "../harness.js"

const prebuild = Path.join(root, "src", "native", "prebuilds", "linux-arm64")
const arm64Root = process.env["SOAD_ARM64_ROOT"] ?? "/var/tmp/soad-arm64-node"
const node = Path.join(arm64Root, "usr", "bin", "node")
const script = Path.join(root, "test", "fixtures", "arm64-check.cjs")

/** The absolute path of a program on PATH, or undefined. */
const which = (program: string): string | undefined =>
  (process.env["PATH"] ?? "")
    .split(":")
    .map((dir) => Path.join(dir, program))
    .find((file) => Fs.existsSync(file))

const qemu = which("qemu-aarch64-static")

/** Why the test cannot run here, or undefined if it can. */
const missing =
  process.platform !== "linux" || process.arch !== "x64"
    ? "runs on linux-x64 hosts only"
    : qemu === undefined
    ? "no qemu-aarch64-static (apt-get install qemu-user-static)"
    : !Fs.existsSync(Path.join(prebuild, "node.node"))
    ? "no linux-arm64 prebuild (npm run build:native with gcc-aarch64-linux-gnu installed)"
    : !Fs.existsSync(node)
    ? `no arm64 Node in ${arm64Root} (run .ci/arm64-node)`
    : undefined

describe.skipIf(missing !== undefined)(`the linux-arm64 prebuild under qemu${missing === undefined ? "" : ` [skipped: ${missing}]`}`, () => {
  it("loads in an arm64 Node, listens, counts a connection, spawns, runs its sentinel, and fires an armed start", () => {
    const libraries = [Path.join(arm64Root, "usr", "lib", "aarch64-linux-gnu"), Path.join(arm64Root, "lib", "aarch64-linux-gnu")]
    const result = ChildProcess.spawnSync(
      qemu!,
      ["-L", arm64Root, node, script, Path.join(prebuild, "node.node"), Path.join(prebuild, "soad-sentinel"), qemu!, arm64Root],
      { encoding: "utf8", env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", LD_LIBRARY_PATH: libraries.join(":") }, timeout: 60_000 }
    )
    expect(result.error).toBeUndefined()
    expect(result.stderr).not.toMatch(/Error|Abort/)
    expect(result.status).toBe(0)
    const said = JSON.parse(result.stdout.trim().split("\n").pop()!) as Record<string, unknown>
    expect(said).toMatchObject({
      arch: "arm64",
      listen: true,
      countStart: true,
      countBefore: -1,
      spawnTrue: { code: 0, signal: null },
      spawnSentinel: { code: 2, signal: null },
      armed: { index: 0, started: true, error: null, code: 7, signal: null }
    })
    expect(said["countAfter"]).toBeGreaterThanOrEqual(0)
  }, 90_000)
})
