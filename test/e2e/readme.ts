/**
 * The README's library test blocks, read from the README itself so that they and the tests that run them cannot
 * drift apart: each TypeScript block of "### Testing your services" is marked `<!-- library-test: FILE -->` (and
 * every one must be), FILE being the name it is run under in a user's project.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { root } from "../harness.js"

/** The marked TypeScript blocks of the README's "Testing your services", by file name. */
export const libraryTestBlocks = (): Record<string, string> => {
  const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
  const start = readme.indexOf("\n### Testing your services\n")
  if (start < 0) throw new Error("README.md has no '### Testing your services' section")
  const next = readme.slice(start + 1).search(/\n##+ /)
  const section = next < 0 ? readme.slice(start) : readme.slice(start, start + 1 + next)
  const blocks: Record<string, string> = {}
  for (const match of section.matchAll(/<!-- library-test: ([\w.-]+) -->\n```ts\n([\s\S]*?)```\n/g)) {
    blocks[match[1]!] = match[2]!
  }
  const all = section.split("```ts\n").length - 1
  if (all !== Object.keys(blocks).length) throw new Error(`README.md: ${all - Object.keys(blocks).length} TypeScript block(s) of "Testing your services" not marked <!-- library-test: FILE -->`)
  if (all === 0) throw new Error(`README.md: no TypeScript block in "Testing your services"`)
  return blocks
}
