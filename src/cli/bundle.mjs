// Builds the `soad` command (npm run build:bin): renders the command tree's help and version texts (helpTexts.ts);
// bundles the full way (cli/program.ts) as one CommonJS file, dist/program.cjs, which bin.js loads with V8's code
// cache (cli/codeCache.ts); then src/bin.ts as dist/bin.cjs, the light path, with the texts beside it (help.json)
// and program.cjs's content hash as SOAD_PROGRAM_HASH, so that the control commands load no Effect. Both CommonJS:
// Node's ES module loader costs start-up and memory. Last, one run of soad makes the code cache for this node, as
// any run does where it may write.
import * as esbuild from "esbuild"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")
// package.json's version is soad's (cli/command.ts reads SOAD_VERSION): the one place it is written.
const { version } = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
/**
 * Node's builtins, one object each. esbuild turns each `import * as Fs from "node:fs"` into a copy of the module
 * (`__toESM`): an object with a getter closure per export, made again in every module that imports it (22 copies
 * of fs's 104 exports in soad: ~0.5 MB of heap an idle soad keeps, heap snapshot of `npm run bench`'s idle run).
 * This rewrites such an import, in soad's sources only, to a default import of a module that is the builtin itself
 * (`export default require("node:fs")`): the same object, once. Named and default imports are left as they are.
 */
const builtinsOnce = {
  name: "builtins-once",
  setup(build) {
    build.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
      const source = Fs.readFileSync(args.path, "utf8")
      return {
        contents: source.replace(/^import \* as (\w+) from "(node:[\w/]+)"$/gm, 'import $1 from "builtin:$2"'),
        loader: "ts"
      }
    })
    build.onResolve({ filter: /^builtin:/ }, (args) => ({ path: args.path.slice("builtin:".length), namespace: "builtin" }))
    build.onLoad({ filter: /.*/, namespace: "builtin" }, (args) => ({
      contents: `export default require(${JSON.stringify(args.path)})`,
      loader: "js"
    }))
  }
}

/**
 * node:module in a bundle: `createRequire` gives the bundle's own `require` (each bundle is a CommonJS file in dist/,
 * so its require resolves from where createRequire(import.meta.url) would). Requiring node:module itself would
 * load Node's ES module loader and source maps (internal/modules/esm/loader, source_map: some 90 KB of source
 * compiled, and the pages of node's binary that hold it), which a soad that only runs never needs.
 */
const moduleAsRequire = {
  name: "module-as-require",
  setup(build) {
    build.onResolve({ filter: /^node:module$/ }, (args) =>
      /[\\/]src[\\/]/.test(args.importer) ? { path: "node:module", namespace: "module-as-require" } : undefined)
    build.onLoad({ filter: /.*/, namespace: "module-as-require" }, () => ({
      contents: "export const createRequire = () => require\nexport default { createRequire }",
      loader: "js"
    }))
  }
}

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "warning",
  define: { SOAD_VERSION: JSON.stringify(version) }
}

/**
 * What stands for import.meta.url in a CommonJS bundle (`define`d as SOAD_IMPORT_META.url): the file's own URL,
 * made when first read (node:url's pathToFileURL, which a run does not otherwise need). Its "use strict" comes
 * first, so that the bundle (ES modules, strict) stays strict: esbuild's own directive follows this banner, where
 * it is no directive.
 */
const importMetaUrl =
  '"use strict";\nvar SOAD_IMPORT_META = { get url() { return require("node:url").pathToFileURL(__filename).href } };'

const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-bundle-"))
try {
  const renderer = Path.join(work, "helpTexts.mjs")
  // An ES module run from a temporary directory: node-gyp-build (CommonJS, requiring builtins) stays outside it,
  // imported from where it is installed. The bundles take it in.
  const gypBuild = {
    name: "node-gyp-build-outside",
    setup(build) {
      build.onResolve({ filter: /^node-gyp-build$/ }, () => ({
        path: pathToFileURL(createRequire(import.meta.url).resolve("node-gyp-build")).href,
        external: true
      }))
    }
  }
  await esbuild.build({ ...common, plugins: [gypBuild], entryPoints: [Path.join(root, "src/cli/helpTexts.ts")], outfile: renderer })
  const { helpTexts } = await import(pathToFileURL(renderer).href)
  const texts = await helpTexts()
  const dist = Path.join(root, "dist")
  Fs.rmSync(Path.join(dist, "chunks"), { recursive: true, force: true })
  for (const old of Fs.readdirSync(dist).filter((name) => /^program\.cjs\..*\.cache$/.test(name))) Fs.rmSync(Path.join(dist, old))
  // import.meta.url (os/native.ts finds the addon from it) is program.cjs's own.
  const program = Path.join(dist, "program.cjs")
  await esbuild.build({
    ...common,
    format: "cjs",
    plugins: [builtinsOnce, moduleAsRequire],
    entryPoints: [Path.join(root, "src/cli/program.ts")],
    outfile: program,
    // SOAD_NO_MINIFY=1: names a CPU profile can be read by (each module's top level is then a function named
    // by its path); never for a release: the minified source is what V8 keeps in memory.
    minify: process.env.SOAD_NO_MINIFY !== "1",
    banner: { js: importMetaUrl },
    // It runs as a vm.Script (cli/codeCache.ts), which has no loader for import(): a builtin is required instead.
    supported: { "dynamic-import": false },
    // import.meta.url made when read (SOAD_IMPORT_META, above); os/native.ts finds itself by __filename.
    define: { ...common.define, "import.meta.url": "SOAD_IMPORT_META.url", SOAD_FILENAME: "__filename" }
  })
  const hash = Crypto.createHash("sha256").update(Fs.readFileSync(program)).digest("hex").slice(0, 16)
  Fs.rmSync(Path.join(dist, "bin.js"), { force: true }) // tsc's, from the sources: not the command
  await esbuild.build({
    ...common,
    format: "cjs",
    plugins: [builtinsOnce, moduleAsRequire],
    entryPoints: [Path.join(root, "src/bin.ts")],
    outfile: Path.join(dist, "bin.cjs"),
    minify: true,
    // import() of a builtin (node:vm, in cli/codeCache.ts) would start Node's ES module loader: a require instead.
    supported: { "dynamic-import": false },
    // import.meta.url (os/lazyNet.ts requires node:net from it) is bin.cjs's own, as program.cjs's is.
    banner: { js: importMetaUrl },
    define: {
      ...common.define,
      SOAD_PROGRAM_HASH: JSON.stringify(hash),
      SOAD_DIST: "__dirname",
      "import.meta.url": "SOAD_IMPORT_META.url",
      SOAD_FILENAME: "__filename"
    }
  })
  // The help and version texts, read by the light path when asked for (cli/light.ts).
  Fs.writeFileSync(Path.join(dist, "help.json"), `${JSON.stringify(texts)}\n`)
  Fs.copyFileSync(Path.join(root, "src/soad.sh"), Path.join(dist, "soad"))
  Fs.chmodSync(Path.join(dist, "soad"), 0o755)
  await makeCodeCache(dist, work, hash)
} finally {
  Fs.rmSync(work, { recursive: true, force: true })
}

/** Runs soad once, until it has started and written the code cache of program.cjs (`hash`) for this node. */
async function makeCodeCache(dist, work, hash) {
  const cached = () => Fs.readdirSync(dist).some((name) => name.startsWith(`program.cjs.${hash}.${process.version}-`))
  const soad = ChildProcess.spawn(Path.join(dist, "soad"), ["-s", Path.join(work, "cache.sock"), "--", "true"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, PATH: `${Path.dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}` }
  })
  let said = ""
  soad.stderr.on("data", (chunk) => (said += chunk))
  const ended = new Promise((resolve) => soad.on("exit", resolve))
  for (let waited = 0; !cached() && soad.exitCode === null && waited < 20_000; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  soad.kill("SIGTERM")
  await ended
  if (!cached()) throw new Error(`soad made no code cache in ${dist}: ${said}`)
}
