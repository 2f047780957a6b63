/**
 * The leftovers a dead soad left: one listing of the cgroup root serves every unit (a start of 1,000 services
 * used to list it once per service), and only cgroups of soads that are gone count.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as Cgroup from "../../src/os/cgroup.js"

const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) Fs.rmSync(d, { recursive: true, force: true })
})

/** A fake cgroup root with these entries (directories). */
const root = (entries: ReadonlyArray<string>): string => {
  const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-cgroup-"))
  dirs.push(d)
  for (const entry of entries) Fs.mkdirSync(Path.join(d, entry))
  return d
}

const dead = 2_147_483_000 // no such pid
const own = process.pid

describe("leftover cgroups", () => {
  it("indexes the cgroups of dead soads by unit, and skips live owners, our own and other names", () => {
    const d = root([
      `soad.blog-1a.${dead}`,
      `soad.blog-1a.${dead}.3`,
      `soad.wiki-2b.${dead}`,
      `soad.blog-1a.1`, // pid 1 is alive
      `soad.blog-1a.${own}`,
      `soad.blog-1a.${dead}.x`,
      `soad..${dead}`,
      "system.slice",
      `soad.shop-3c.${dead}.1.2`
    ])
    const index = Cgroup.leftoverIndex(d, own)
    expect([...index.keys()].sort()).toEqual(["blog-1a", "wiki-2b"])
    expect(index.get("blog-1a")!.map((p) => Path.basename(p)).sort()).toEqual([`soad.blog-1a.${dead}`, `soad.blog-1a.${dead}.3`])
  })

  it("hands each unit its leftovers once", () => {
    const d = root([`soad.blog-1a.${dead}`, `soad.wiki-2b.${dead}`])
    expect(Cgroup.leftovers(d, "blog-1a", own).map((p) => Path.basename(p))).toEqual([`soad.blog-1a.${dead}`])
    expect(Cgroup.leftovers(d, "blog-1a", own)).toEqual([])
    expect(Cgroup.leftovers(d, "wiki-2b", own).map((p) => Path.basename(p))).toEqual([`soad.wiki-2b.${dead}`])
  })
})
