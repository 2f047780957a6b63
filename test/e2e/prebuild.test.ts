/**
 * The Linux prebuilds the package ships (src/native/prebuilds/linux-*: the addon and its helper programs) load on
 * every glibc from 2.28 on (RHEL 8, Debian 10, Ubuntu 20.04) and are built for the architecture their folder
 * names. A build on a newer glibc links to newer symbol versions unless src/native/glibc.h and helper/start.c
 * pin older ones: `objdump -T` lists the version each dynamic symbol needs, `readelf -h` the machine.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { root } from "../harness.js"

const prebuilds = Path.join(root, "src", "native", "prebuilds")

/** The oldest glibc soad supports. */
const oldestGlibc = [2, 28]

/** The ELF machine `readelf -h` names for each architecture of Node (process.arch). */
const machines: Record<string, string> = { x64: "Advanced Micro Devices X86-64", arm64: "AArch64" }

const tool = (command: string, args: ReadonlyArray<string>): string => {
  const result = ChildProcess.spawnSync(command, args, { encoding: "utf8" })
  if (result.error !== undefined) throw new Error(`${command}: ${result.error.message} (install binutils)`)
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}): ${result.stderr}`)
  return result.stdout
}

/** Every GLIBC_x.y[.z] version the file's dynamic symbols need, as number arrays. */
const glibcVersions = (file: string): Array<Array<number>> =>
  [...tool("objdump", ["-T", file]).matchAll(/\bGLIBC_(\d+(?:\.\d+)+)\b/g)].map((match) => match[1]!.split(".").map(Number))

const newer = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0)
  }
  return false
}

/** Why the build skipped the arm64 cross-build (src/native/helper/install.mjs leaves this note), if it did. */
const armSkipped = (): string | undefined => {
  try {
    return Fs.readFileSync(Path.join(prebuilds, "linux-arm64.skipped"), "utf8").trim()
  } catch {
    return undefined
  }
}

const linuxFolders = Fs.existsSync(prebuilds) ? Fs.readdirSync(prebuilds).filter((name) => name.startsWith("linux-")) : []

describe("the Linux prebuilds", () => {
  it.runIf(process.platform === "linux")("exist for this machine's architecture (npm run build made them)", () => {
    expect(linuxFolders).toContain(`linux-${process.arch}`)
  })

  // CI installs the cross compiler, so there the build must have made it; elsewhere, wherever the build did not skip it.
  const skipped = armSkipped()
  it.runIf(process.platform === "linux" && process.arch === "x64" && (process.env.CI === "true" || skipped === undefined))(
    `exist for linux-arm64 too where the cross compiler is installed (npm run build:native cross-builds them)${
      skipped !== undefined ? `; the build skipped it: ${skipped}` : ""
    }`,
    () => {
      expect(skipped).toBeUndefined()
      expect(linuxFolders).toContain("linux-arm64")
    }
  )

  for (const folder of linuxFolders) {
    const arch = folder.slice("linux-".length)
    const dir = Path.join(prebuilds, folder)
    const files = Fs.readdirSync(dir).filter((name) => name.endsWith(".node") || name.startsWith("soad-"))

    it(`${folder}: the addon and both helpers are there`, () => {
      expect(files).toEqual(expect.arrayContaining(["node.node", "soad-sentinel", "soad-guard"]))
    })

    for (const name of files) {
      const file = Path.join(dir, name)
      it(`${folder}/${name} needs no glibc newer than ${oldestGlibc.join(".")}`, () => {
        const versions = glibcVersions(file)
        expect(versions.length).toBeGreaterThan(0) // a glibc build, dynamically linked
        const tooNew = versions.filter((version) => newer(version, oldestGlibc)).map((version) => `GLIBC_${version.join(".")}`)
        expect([...new Set(tooNew)]).toEqual([])
      })
      it(`${folder}/${name} is an ELF file for ${arch}`, () => {
        const machine = /^\s*Machine:\s*(.+)$/m.exec(tool("readelf", ["-h", file]))?.[1]?.trim()
        expect(machine).toBe(machines[arch] ?? `(no machine known for ${arch})`)
      })
    }
  }
})
