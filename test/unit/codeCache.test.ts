/**
 * The code cache of the full command tree (cli/codeCache.ts): a load without a cache makes one when asked, the next
 * load uses it, a cache V8 refuses (another node, other flags, damaged) is replaced, and one that cannot be written
 * costs nothing but the cache.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as CodeCache from "../../src/cli/codeCache.js"

const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) Fs.rmSync(d, { recursive: true, force: true })
})

/** A CommonJS file with functions to compile, exporting what it saw of the CommonJS wrapper. */
const program = () => {
  const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-cache-"))
  dirs.push(d)
  const file = Path.join(d, "program.cjs")
  Fs.writeFileSync(
    file,
    `const path = require("node:path")\n` +
      Array.from({ length: 200 }, (_, i) => `function f${i}(x) { return x + ${i} }\n`).join("") +
      `module.exports = { sum: [${Array.from({ length: 200 }, (_, i) => `f${i}(1)`).join(", ")}].reduce((a, b) => a + b, 0), file: __filename, dir: path.basename(__dirname) }\n`
  )
  return { d, file }
}

const caches = (d: string) => Fs.readdirSync(d).filter((name) => name.endsWith(".cache"))

describe("the code cache", () => {
  it("is made when asked after a load without one, used by the next load, and left alone then", async () => {
    const { d, file } = program()
    const first = await CodeCache.load(file, "h1")
    expect(first.cache).toBe("none")
    expect(first.exports).toEqual({ sum: 200 + 199 * 100, file, dir: Path.basename(d) })
    expect(caches(d)).toEqual([])
    first.save()
    expect(caches(d)).toEqual([Path.basename(CodeCache.cachePath(file, "h1"))])
    expect(caches(d)[0]).toContain(`.h1.${process.version}-${process.arch}-`)
    const written = Fs.statSync(CodeCache.cachePath(file, "h1")).mtimeMs
    const second = await CodeCache.load(file, "h1")
    expect(second.cache).toBe("used")
    expect(second.exports).toEqual(first.exports)
    second.save()
    expect(Fs.statSync(CodeCache.cachePath(file, "h1")).mtimeMs).toBe(written)
  })

  it("replaces a cache V8 refuses, and names each build's cache by its content hash", async () => {
    const { file } = program()
    const cache = CodeCache.cachePath(file, "h1")
    Fs.writeFileSync(cache, Buffer.alloc(4096, 7))
    const refused = await CodeCache.load(file, "h1")
    expect(refused.cache).toBe("refused")
    expect((refused.exports as { sum: number }).sum).toBe(200 + 199 * 100)
    refused.save()
    expect((await CodeCache.load(file, "h1")).cache).toBe("used")
    // another build of the file: its own cache, never the other's
    expect((await CodeCache.load(file, "h2")).cache).toBe("none")
  })

  it("without the cache (SOAD_CODE_CACHE=0) neither reads nor writes one; where none can be written, loads all the same", async () => {
    const { d, file } = program()
    const off = await CodeCache.load(file, "h1", false)
    off.save()
    expect(off.cache).toBe("none")
    expect(caches(d)).toEqual([])
    Fs.mkdirSync(CodeCache.cachePath(file, "h1")) // a directory where the cache would go: it cannot be written
    const blocked = await CodeCache.load(file, "h1")
    expect(() => blocked.save()).not.toThrow()
    expect(Fs.readdirSync(d).sort()).toEqual(["program.cjs", Path.basename(CodeCache.cachePath(file, "h1"))])
  })
})
