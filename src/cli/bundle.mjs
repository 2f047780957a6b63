// Builds the `soad` command (npm run build:bin): renders the command tree's help and version texts (helpTexts.ts),
// then bundles src/bin.ts with them baked in as SOAD_HELP, split so that the light path (bin.js) loads no Effect:
// the full command tree is a chunk (dist/chunks/) that bin.js imports only for a run and what the light path leaves.
// Then the same program as one CommonJS file (dist/snapshot.cjs, from cli/snapshot.ts), audited (snapshotAudit.mjs)
// and made into this node's startup snapshot (snapshot.mjs), which the `soad` script runs when it can.
import * as esbuild from "esbuild"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as Audit from "./snapshotAudit.mjs"
import * as Snapshot from "./snapshot.mjs"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")
// package.json's version is soad's (cli/command.ts reads SOAD_VERSION): the one place it is written.
const { version } = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["node-gyp-build"],
  logLevel: "warning",
  define: { SOAD_VERSION: JSON.stringify(version) }
}

const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-bundle-"))
try {
  const renderer = Path.join(work, "helpTexts.mjs")
  await esbuild.build({ ...common, entryPoints: [Path.join(root, "src/cli/helpTexts.ts")], outfile: renderer })
  const { helpTexts } = await import(pathToFileURL(renderer).href)
  const texts = await helpTexts()
  Fs.rmSync(Path.join(root, "dist/chunks"), { recursive: true, force: true })
  await esbuild.build({
    ...common,
    entryPoints: [Path.join(root, "src/bin.ts")],
    outdir: Path.join(root, "dist"),
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    minify: true,
    define: { ...common.define, SOAD_HELP: JSON.stringify(texts) }
  })
  Fs.copyFileSync(Path.join(root, "src/soad.sh"), Path.join(root, "dist/soad"))
  Fs.chmodSync(Path.join(root, "dist/soad"), 0o755)

  // The snapshot's program: one file (a snapshot is made from one script), where import.meta.url (os/native.ts finds
  // the addon from it) is bin.js's, which cli/snapshot.ts sets once restored.
  const snapshot = {
    ...common,
    format: "cjs",
    entryPoints: [Path.join(root, "src/cli/snapshot.ts")],
    absWorkingDir: root,
    define: { ...common.define, SOAD_HELP: JSON.stringify(texts), "import.meta.url": "globalThis.SOAD_IMPORT_META_URL" }
  }
  const wrong = await Audit.audit(esbuild, snapshot, Path.join(root, "dist"), work)
  if (wrong.length > 0) {
    throw new Error(
      "a module reads its process while it is evaluated, which the startup snapshot would freeze at build time " +
        "(read it when it is used instead, or allow it in src/cli/snapshotAudit.mjs with why a restored soad is right):\n" +
        wrong.map(({ read, module, frame }) => `  ${read} in ${module} (${frame})`).join("\n")
    )
  }
  await esbuild.build({ ...snapshot, outfile: Path.join(root, "dist/snapshot.cjs"), minify: true })
  Snapshot.buildSnapshot(Path.join(root, "dist"))
} finally {
  Fs.rmSync(work, { recursive: true, force: true })
}
