/**
 * The pieces of soad's systemd support that need no process: where an instance's control socket is, whether stderr
 * is the journal, the priorities, and the Registry's changes that drive the STATUS= line.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as LogLevel from "effect/LogLevel"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Control from "../../src/observe/control.js"
import * as ControlPaths from "../../src/observe/controlPaths.js"
import * as Lifecycle from "../../src/core/lifecycle.js"
import { statusText } from "../../src/observe/systemd.js"
import * as Logging from "../../src/Logging.js"
import * as Registry from "../../src/Registry.js"

describe("an instance's control socket", () => {
  it("gives each instance its own socket, under XDG_RUNTIME_DIR or /run", () => {
    expect(ControlPaths.socketOf("blog", { XDG_RUNTIME_DIR: "/run/user/1000" })).toBe("/run/user/1000/soad/blog.sock")
    expect(ControlPaths.socketOf("blog", {})).toBe("/run/soad/blog.sock")
  })

  it("derives one instance name per config file, whatever path reaches it", () => {
    const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-unit-"))
    try {
      const file = Path.join(d, "apps.toml")
      Fs.writeFileSync(file, "")
      Fs.symlinkSync(file, Path.join(d, "link.toml"))
      const name = Control.instanceOf(file)
      expect(name).toMatch(/^apps-[0-9a-f]{8}$/)
      expect(Control.instanceOf(Path.join(d, "link.toml"))).toBe(name)
      expect(Control.instanceOf(Path.relative(process.cwd(), file))).toBe(name)
      Fs.mkdirSync(Path.join(d, "other"))
      Fs.writeFileSync(Path.join(d, "other", "apps.toml"), "")
      expect(Control.instanceOf(Path.join(d, "other", "apps.toml"))).not.toBe(name) // same name, another file
      expect(Control.instanceName.test(name)).toBe(true)
      expect(Control.instanceName.test(Control.instanceOf(Path.join(d, "..hidden file!.toml")))).toBe(true)
    } finally {
      Fs.rmSync(d, { recursive: true, force: true })
    }
  })

  it("--name takes plain file names only", () => {
    for (const good of ["blog", "soad@blog", "a.b_c-1"]) expect(Control.instanceName.test(good)).toBe(true)
    for (const bad of ["", "../etc", "a/b", ".hidden", "-x", "a b", "x".repeat(65)]) expect(Control.instanceName.test(bad)).toBe(false)
  })
})

describe("journald", () => {
  it("stderr is the journal only when JOURNAL_STREAM is its own dev:inode", () => {
    const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-unit-"))
    const fd = Fs.openSync(Path.join(d, "log"), "w")
    try {
      const stat = Fs.fstatSync(fd, { bigint: true })
      expect(Logging.toJournal({ JOURNAL_STREAM: `${stat.dev}:${stat.ino}` }, fd)).toBe(true)
      expect(Logging.toJournal({ JOURNAL_STREAM: `${stat.dev}:${stat.ino + 1n}` }, fd)).toBe(false)
      expect(Logging.toJournal({}, fd)).toBe(false)
      expect(Logging.toJournal({ JOURNAL_STREAM: "garbage" }, fd)).toBe(false)
    } finally {
      Fs.closeSync(fd)
      Fs.rmSync(d, { recursive: true, force: true })
    }
  })

  it("maps levels to syslog priorities", () => {
    expect([LogLevel.Error, LogLevel.Warning, LogLevel.Info, LogLevel.Debug].map(Logging.priority)).toEqual([3, 4, 6, 7])
  })
})

describe("the STATUS= line", () => {
  it("counts apps", () => {
    expect(statusText(3, 12)).toBe("3 of 12 apps running")
    expect(statusText(0, 1)).toBe("0 of 1 app running")
  })

  it("a phase change is a Registry change, heard by whoever waits", async () => {
    await Effect.runPromise(Effect.gen(function*() {
      const registry = yield* Registry.make
      // The tracker reports to the Registry of the context it is made in.
      const tracker = yield* Lifecycle.makeTracker("blog").pipe(Effect.provideService(Registry.Registry, registry))
      const waiting = yield* Effect.fork(registry.nextChange)
      yield* Effect.yieldNow()
      expect(waiting.unsafePoll()).toBeNull()
      yield* Lifecycle.enter(tracker, { _tag: "Spawned", pid: 42, startedAt: 0 })
      yield* Fiber.join(waiting)
    }))
  })
})
