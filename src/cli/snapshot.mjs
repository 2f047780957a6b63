// Makes soad's startup snapshot (cli/snapshot.ts) for the node that runs this: dist/snapshot.blob, and
// dist/snapshot.key naming that node (its version and real path), which the `soad` script checks before it uses the
// blob (a snapshot runs only on the node that made it). The build makes one (cli/bundle.mjs); the `soad` script
// makes one when SOAD_SNAPSHOT=1 asks for it and there is none for the node that runs it (an install, a new Node).
//
//   node src/cli/snapshot.mjs [DIST]   makes it from DIST/snapshot.cjs; says why not on stderr if it cannot
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** The V8 flags the `soad` script runs node with: its `flags="…"` line, as a snapshot must be made under them. */
export const flagsOf = (dist) => {
  const line = /^flags="([^"]*)"$/m.exec(Fs.readFileSync(Path.join(dist, "soad"), "utf8"))
  if (line === null) throw new Error(`no flags="…" line in ${Path.join(dist, "soad")}`)
  return line[1].split(" ").filter((flag) => flag !== "")
}

/**
 * Makes `blob` from the bundle `entry` under the `soad` script's flags; `env` is the environment of the node that
 * builds it. Throws, with what node said, if it cannot.
 */
export const makeBlob = (dist, entry, blob, env = process.env) => {
  const built = ChildProcess.spawnSync(
    process.execPath,
    [...flagsOf(dist), "--snapshot-blob", blob, "--build-snapshot", entry],
    { cwd: dist, encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 }
  )
  // Node warns of the builtin modules it has not verified in snapshots (child_process, module, readline): soad
  // only requires them when the snapshot is built, and uses them after it is restored, as Node's own tests do.
  const said = built.stderr.split("\n").filter((line) =>
    line !== "" && !/not yet fully verified|may still work|Node\.js issue tracker|--trace-warnings|Deleting Error\.stackTraceLimit/
      .test(line)
  )
  if (built.status !== 0 || !Fs.existsSync(blob)) {
    throw new Error(`node --build-snapshot ${entry} ended with ${built.status ?? built.signal}: ${said.join(" ").trim() || built.error?.message}`)
  }
  return said
}

/**
 * Makes DIST/snapshot.blob and DIST/snapshot.key from DIST/snapshot.cjs. Each is written aside and renamed over the
 * old one, the blob first: a soad starting meanwhile reads a whole key and a whole blob (two soads making one at
 * once make the same pair).
 */
export const buildSnapshot = (dist) => {
  const blob = Path.join(dist, "snapshot.blob")
  const key = Path.join(dist, "snapshot.key")
  const aside = (path) => `${path}.${process.pid}`
  try {
    makeBlob(dist, Path.join(dist, "snapshot.cjs"), aside(blob))
    Fs.writeFileSync(aside(key), `${process.version} ${Fs.realpathSync(process.execPath)}\n`)
    Fs.renameSync(aside(blob), blob)
    Fs.renameSync(aside(key), key)
  } finally {
    Fs.rmSync(aside(blob), { force: true })
    Fs.rmSync(aside(key), { force: true })
  }
}

if (process.argv[1] !== undefined && Fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dist = Path.resolve(process.argv[2] ?? Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "dist"))
  try {
    buildSnapshot(dist)
  } catch (error) {
    console.error(`soad: cannot make a startup snapshot in ${dist}: ${error.message}`)
    process.exitCode = 1
  }
}
