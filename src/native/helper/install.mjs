// Copies soad's helper programs (executable targets of binding.gyp, named soad-*) from build/Release into this
// platform's prebuilds folder, beside the addon that prebuildify put there; node-gyp-build finds the addon and
// soad finds the helpers next to it. Run from src/native after prebuildify.
//
// `node helper/install.mjs --cross=arm64` instead cross-builds the linux-arm64 prebuild (addon and helpers) with
// Debian's gcc-aarch64-linux-gnu, or says in one line that it skips it when that compiler is missing. Run it
// before the host's prebuildify: both build in build/, and node-gyp-build loads build/Release before any prebuild,
// so the host's build must be the one left there.
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"

const from = Path.join("build", "Release")

/** Copies the helpers of build/Release into prebuilds/linux-<arch> (or this platform's folder). */
const copyHelpers = (folder) => {
  const to = Path.join("prebuilds", folder)
  Fs.mkdirSync(to, { recursive: true })
  for (const name of Fs.readdirSync(from)) {
    if (!name.startsWith("soad-")) continue
    const source = Path.join(from, name)
    if (!Fs.statSync(source).isFile()) continue
    // A new file renamed over the old one: a soad running the old helper keeps it (copying over a running
    // program fails with ETXTBSY), and no soad ever finds a half-written one.
    const target = Path.join(to, name)
    const partial = `${target}.${process.pid}.partial`
    Fs.copyFileSync(source, partial)
    Fs.chmodSync(partial, 0o755)
    Fs.renameSync(partial, target)
  }
}

/** The GNU triplet of each architecture we cross-build for on Linux (Node's process.arch names). */
const triplets = { arm64: "aarch64-linux-gnu" }

/** True if `command` runs (found on PATH). */
const found = (command) => ChildProcess.spawnSync(command, ["--version"], { stdio: "ignore" }).error === undefined

/** Builds prebuilds/linux-<arch> with the cross toolchain <triplet>-gcc, or skips with one line. */
const cross = (arch) => {
  const triplet = triplets[arch]
  if (triplet === undefined) throw new Error(`install.mjs: no cross toolchain known for ${arch}`)
  if (process.platform !== "linux" || process.arch === arch) return
  const skipped = Path.join("prebuilds", `linux-${arch}.skipped`)
  if (!found(`${triplet}-gcc`) || !found(`${triplet}-strip`)) {
    const why = `no ${triplet}-gcc (apt-get install gcc-${triplet} binutils-${triplet} to build it)`
    console.log(`soad: skipping the linux-${arch} prebuild: ${why}`)
    // What this build did, for the tests: they check the prebuild where the build made one, not where a compiler
    // happens to be on PATH when they run.
    Fs.mkdirSync("prebuilds", { recursive: true })
    Fs.writeFileSync(skipped, `${why}\n`)
    return
  }
  Fs.rmSync(skipped, { force: true })
  // node-gyp links C-only targets with $(CXX) and archives with $(AR): all of them from the cross toolchain.
  for (const [name, tool] of [["CC", "gcc"], ["CXX", "gcc"], ["LINK", "gcc"], ["AR", "ar"]]) {
    process.env[name] = `${triplet}-${tool}`
  }
  const prebuildify = createRequire(import.meta.url)("prebuildify")
  prebuildify({ napi: true, strip: true, stripBin: `${triplet}-strip`, quiet: true, arch, platform: "linux" }, (err) => {
    if (err) {
      console.error(`soad: the linux-${arch} prebuild failed: ${err.message}`)
      process.exitCode = 1
      return
    }
    copyHelpers(`linux-${arch}`)
  })
}

const crossArg = process.argv.slice(2).find((arg) => arg.startsWith("--cross="))
if (crossArg !== undefined) cross(crossArg.slice("--cross=".length))
else copyHelpers(`${process.platform}-${process.arch}`)
