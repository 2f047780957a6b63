// Builds the `soad` command (npm run build:bin): renders the command tree's help and version texts (helpTexts.ts),
// then bundles src/bin.ts with them baked in as SOAD_HELP, split so that the light path (bin.js) loads no Effect:
// the full command tree is a chunk (dist/chunks/) that bin.js imports only for a run and what the light path leaves.
import * as esbuild from "esbuild"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

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
} finally {
  Fs.rmSync(work, { recursive: true, force: true })
}
Fs.copyFileSync(Path.join(root, "src/soad.sh"), Path.join(root, "dist/soad"))
Fs.chmodSync(Path.join(root, "dist/soad"), 0o755)
