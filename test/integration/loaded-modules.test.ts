/**
 * What a sleeping soad has loaded of Node: each builtin module stays for good (its code and objects, some 0.25 MB
 * for readline, measured by hand). soad reads no keys unless `--wizard` asks it to, so node:readline is loaded
 * then (cli/terminal.ts), not by every run; nor node:cluster, node:child_process and node:dgram (os/unixServer.ts,
 * os/guard.ts), nor perf_hooks (bin.ts). Nor does it start Node's ES module loader (some 4 ms of start-up). Its
 * bundles hold one object for each builtin (cli/bundle.mjs).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, expect, it } from "vitest"
import { bin, killAll, soad, tempDirs } from "../harness.js"

const dir = tempDirs()
afterEach(killAll)

it("a soad that listens has not loaded node:net, streams, readline, child_process, cluster, perf_hooks nor the ES module loader; --wizard loads readline and prompts", async () => {
  const d = dir()
  const list = Path.join(d, "modules.txt")
  // Preloaded: writes the builtin modules loaded so far when soad settles (SIGUSR2 is not soad's).
  const preload = Path.join(d, "preload.cjs")
  Fs.writeFileSync(
    preload,
    `process.on("SIGUSR2", () => require("node:fs").writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join("\\n")))\n`
  )
  const s = soad(["--log-format", "json", "--log-level", "debug", "-s", Path.join(d, "app.sock"), "--", "true"], {
    env: { ...process.env, NODE_OPTIONS: `--require ${preload}` }
  })
  await s.waitFor(/"event":"settled"/)
  s.process.kill("SIGUSR2")
  for (let i = 0; i < 100 && !Fs.existsSync(list); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  const loaded = Fs.readFileSync(list, "utf8").split("\n")
  // Nor node:net and Node's streams, though its stderr and stdout are pipes here (process.stderr and stdout would
  // be net.Sockets): soad writes its stderr itself (os/stderr.ts), hides process.stdout from Effect's logger while
  // its bundle is evaluated (bin.ts), and loads node:net where it makes a socket (os/lazyNet.ts).
  expect(loaded).toContain("NativeModule fs")
  for (const name of ["net", "stream", "internal/streams/writable"]) expect(loaded).not.toContain(`NativeModule ${name}`)
  expect(loaded).not.toContain("NativeModule readline")
  // soad-guard is started by the binding (os/guard.ts), not node:child_process (which brings node:dgram), and
  // the control socket is served without net.Server.listen (os/unixServer.ts), which loads node:cluster and both.
  for (const name of ["child_process", "dgram", "cluster"]) expect(loaded).not.toContain(`NativeModule ${name}`)
  // Nor perf_hooks (~0.3 MB kept): Effect's clock reads globalThis.performance when evaluated, which bin.ts hides
  // then, and soad measures with process.hrtime.
  for (const name of ["perf_hooks", "internal/perf/performance"]) expect(loaded).not.toContain(`NativeModule ${name}`)
  // No ES module loader at work (Node's bootstrap loads its first parts in every process): bin.cjs loads
  // program.cjs (and node:vm) by require, not import().
  for (const part of ["module_job", "module_map", "translators", "resolve"]) {
    expect(loaded).not.toContain(`NativeModule internal/modules/esm/${part}`)
  }
  // Nor node:module, which brings the ES module loader and source maps: each bundle's createRequire is its own
  // require, and codeCache.ts writes Node's CommonJS wrapper out (cli/bundle.mjs). Nor an AbortController, made
  // only for a control command (bin.ts).
  for (const name of ["module", "internal/modules/esm/loader", "internal/source_map/source_map", "internal/abort_controller"]) {
    expect(loaded).not.toContain(`NativeModule ${name}`)
  }

  // The wizard reads keys: it shows its first prompt and waits for an answer. Its stdin here is empty: the end of
  // input is Ctrl-D, and it quits at once (it waited for ever: cli/terminal.ts).
  const wizard = ChildProcess.spawnSync(process.execPath, [bin, "--wizard"], { encoding: "utf8", input: "", timeout: 10_000 })
  expect(wizard.stdout).toMatch(/Wizard Mode for CLI Application/)
  expect(wizard.stdout).toMatch(/This option is optional - use the default\?/)
  expect(wizard.stdout).toMatch(/Quitting wizard mode/)
  expect([wizard.signal, wizard.status]).toEqual([null, 0])
})

// bin.cjs makes process.stdout only when the light path writes to it (cli/stdout.ts); its EPIPE guard comes with it.
it("soad --help whose stdout reader has gone exits 0, without an EPIPE", async () => {
  const child = ChildProcess.spawn(process.execPath, [bin, "--help"], { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout.destroy() // the reader goes before soad writes
  let said = ""
  child.stderr.on("data", (chunk) => (said += chunk))
  const code = await new Promise((resolve) => child.on("exit", resolve))
  expect(said).toBe("")
  expect(code).toBe(0)
})

// Nor on TCP, whatever its stderr is (a file here; a pipe above): process.stdout (a pipe here) is hidden from
// Effect's logger while the bundle is evaluated (bin.ts), node:net loads where a socket is first made
// (os/lazyNet.ts), and listeners' hosts are checked without it (config/ip.ts).
it("a soad whose stderr is a file and stdout a pipe, listening on TCP, has not loaded node:net", async () => {
  const d = dir()
  const list = Path.join(d, "modules.txt")
  const log = Path.join(d, "soad.log")
  const preload = Path.join(d, "preload.cjs")
  Fs.writeFileSync(
    preload,
    `process.on("SIGUSR2", () => require("node:fs").writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join("\\n")))\n`
  )
  const s = soad(["--log-format", "json", "--log-level", "debug", "-l", "127.0.0.1:0", "--", "true"], {
    env: { ...process.env, NODE_OPTIONS: `--require ${preload}` },
    stderrFile: log
  })
  for (let i = 0; i < 200 && !/"event":"settled"/.test(Fs.existsSync(log) ? Fs.readFileSync(log, "utf8") : ""); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  expect(Fs.readFileSync(log, "utf8")).toMatch(/"event":"settled"/)
  s.process.kill("SIGUSR2")
  for (let i = 0; i < 100 && !Fs.existsSync(list); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  const loaded = Fs.readFileSync(list, "utf8").split("\n")
  expect(loaded).toContain("NativeModule fs")
  expect(loaded).not.toContain("NativeModule net")
})

// esbuild bundles `import * as Fs from "node:fs"` as a copy of the module with a getter per export, made again in
// each module that imports it: ~0.5 MB of heap for good (cli/bundle.mjs's builtinsOnce gives each one object).
it("the bundles hold one object for each builtin soad's modules import, not a copy per importer", () => {
  for (const file of ["program.cjs", "bin.cjs"]) {
    const text = Fs.readFileSync(Path.join(Path.dirname(bin), file), "utf8")
    for (const name of ["node:fs", "node:os"]) {
      expect(text.split(`require("${name}")`).length - 1, `${file}: ${name}`).toBe(1)
    }
  }
})
