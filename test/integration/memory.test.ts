/**
 * The settle GC soad runs once it sleeps (os/gc.ts): it must give V8's pages back, which a plain gc() does
 * not (V8 keeps them until its memory reducer runs, ~10 s later). Checked in a fresh Node process: after dropping
 * ~40 MB of objects and a plain gc(), the committed heap is still large; lowMemory shrinks it at once. How much RSS this saves is `npm run bench`'s figure.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { expect, it } from "vitest"
import { root } from "../harness.js"

const script = `
import { native } from ${JSON.stringify(Path.join(root, "dist", "os", "native.js"))}
let junk = Array.from({ length: 400_000 }, (_, i) => ({ i, s: "x".repeat(64) + i }))
junk = undefined
globalThis.gc()
const full = process.memoryUsage().heapTotal
const found = native().lowMemory()
console.log(JSON.stringify({ found, full, after: process.memoryUsage().heapTotal }))
`

it("lowMemory finds Node's LowMemoryNotification and shrinks the committed heap that a plain gc() keeps", () => {
  const out = ChildProcess.execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { encoding: "utf8" })
  const { after, found, full } = JSON.parse(out) as { found: boolean; full: number; after: number }
  expect(found).toBe(true)
  expect(after).toBeLessThan(full / 2)
})
