/**
 * The shape of src as its imports draw it: no module imports itself through others (a circle), the native
 * addon's loader (os/native.ts) is imported only by the OS drivers in src/os/, and a run's program does not
 * evaluate the command tree. Read from the sources' static
 * imports and re-exports (`import`, `import type`, `export … from`), as TypeScript parses them.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../..")
const src = Path.join(root, "src")

const sources = (dir: string): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sources(Path.join(dir, entry.name))
      : entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")
      ? [Path.join(dir, entry.name)]
      : []
  )

/** The modules of src a file imports statically (relative specifiers, `.js` read as the `.ts` beside it). */
const importsOf = (file: string): Array<string> => {
  const parsed = ts.createSourceFile(file, Fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, false)
  const specifiers: Array<string> = []
  for (const statement of parsed.statements) {
    if (
      (ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) &&
      statement.moduleSpecifier !== undefined && ts.isStringLiteral(statement.moduleSpecifier)
    ) specifiers.push(statement.moduleSpecifier.text)
  }
  return specifiers
    .filter((specifier) => specifier.startsWith("."))
    .map((specifier) => Path.resolve(Path.dirname(file), specifier.replace(/\.js$/, ".ts")))
    .filter((target) => Fs.existsSync(target))
}

/**
 * What a file's evaluation loads: the specifiers of its value imports (not `import type`, not an import or
 * re-export whose every name is a type), relative ones resolved as importsOf does, packages as written.
 */
const valueImportsOf = (file: string): { readonly local: Array<string>; readonly packages: Array<string> } => {
  const parsed = ts.createSourceFile(file, Fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, false)
  const specifiers: Array<string> = []
  for (const statement of parsed.statements) {
    if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) {
      const clause = statement.importClause
      const bindings = clause?.namedBindings
      const typesOnly = clause !== undefined && (clause.isTypeOnly ||
        (clause.name === undefined && bindings !== undefined && ts.isNamedImports(bindings) &&
          bindings.elements.length > 0 && bindings.elements.every((element) => element.isTypeOnly)))
      if (!typesOnly) specifiers.push(statement.moduleSpecifier.text)
    } else if (
      ts.isExportDeclaration(statement) && !statement.isTypeOnly && statement.moduleSpecifier !== undefined &&
      ts.isStringLiteral(statement.moduleSpecifier)
    ) specifiers.push(statement.moduleSpecifier.text)
  }
  return {
    local: specifiers.filter((specifier) => specifier.startsWith("."))
      .map((specifier) => Path.resolve(Path.dirname(file), specifier.replace(/\.js$/, ".ts")))
      .filter((target) => Fs.existsSync(target)),
    packages: specifiers.filter((specifier) => !specifier.startsWith("."))
  }
}

/** The files of src and the packages that evaluating `entry` evaluates (static value imports, transitively). */
const evaluatedBy = (entry: string): { readonly files: Set<string>; readonly packages: Set<string> } => {
  const files = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string): void => {
    if (files.has(file)) return
    files.add(file)
    const { local, packages: used } = valueImportsOf(file)
    for (const name of used) packages.add(name)
    for (const target of local) visit(target)
  }
  visit(Path.join(root, entry))
  return { files: new Set([...files].map((file) => Path.relative(root, file))), packages }
}

/** Every file of src with the files it imports, paths relative to the repository. */
const graph = (): Map<string, Array<string>> =>
  new Map(
    sources(src).map((file) => [
      Path.relative(root, file),
      [...new Set(importsOf(file).map((target) => Path.relative(root, target)))]
    ])
  )

/** The strongly connected components of more than one file, or of one that imports itself (Tarjan). */
const circles = (edges: Map<string, Array<string>>): Array<Array<string>> => {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const found: Array<Array<string>> = []
  const visit = (node: string): void => {
    index.set(node, next)
    low.set(node, next)
    next += 1
    stack.push(node)
    onStack.add(node)
    for (const target of edges.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target)
        low.set(node, Math.min(low.get(node)!, low.get(target)!))
      } else if (onStack.has(target)) low.set(node, Math.min(low.get(node)!, index.get(target)!))
    }
    if (low.get(node) !== index.get(node)) return
    const component: Array<string> = []
    for (;;) {
      const member = stack.pop()!
      onStack.delete(member)
      component.push(member)
      if (member === node) break
    }
    if (component.length > 1 || (edges.get(node) ?? []).includes(node)) found.push(component.sort())
  }
  for (const node of [...edges.keys()].sort()) if (!index.has(node)) visit(node)
  return found
}

describe("the shape of src", () => {
  it("has no import circles", () => {
    const edges = graph()
    expect(edges.size).toBeGreaterThan(50) // the walk found the sources
    expect(circles(edges)).toEqual([])
  })

  it("finds a circle when there is one (the check itself)", () => {
    const edges = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]], ["e", ["e"]]])
    expect(circles(edges)).toEqual([["a", "b", "c"], ["e"]])
  })

  it("loads the native addon only from the OS drivers in src/os/", () => {
    const importers = [...graph()]
      .filter(([, targets]) => targets.includes("src/os/native.ts"))
      .map(([file]) => file)
    expect(importers.length).toBeGreaterThan(0)
    expect(importers.filter((file) => !file.startsWith("src/os/")).sort()).toEqual([])
  })

  // The command tree costs a run ~7 ms to build and parse and its heap for as long as soad runs (cli/runArgs.ts):
  // the program's module (what dist/program.cjs evaluates before a line is parsed) reaches it only by import().
  it("evaluates no @effect/cli until a line needs the command tree", () => {
    const { files, packages } = evaluatedBy("src/cli/program.ts")
    expect(files.has("src/cli/serve.ts")).toBe(true) // the walk went through the run
    expect([...packages].filter((name) => name.startsWith("@effect/cli"))).toEqual([])
    expect([...files].filter((file) => ["src/cli/command.ts", "src/cli/tree.ts", "src/cli/help.ts"].includes(file))).toEqual([])
    // the check itself: the tree's module does reach it
    expect([...evaluatedBy("src/cli/tree.ts").packages].some((name) => name.startsWith("@effect/cli"))).toBe(true)
  })

  // The config file's schemas (effect/Schema, ParseResult, SchemaAST, and the 30-odd fields built with them) cost a
  // start ~2 ms to evaluate (`npm run bench`): a run from flags reaches them only by import(), in config mode.
  it("evaluates no effect/Schema, nor the config file's modules, for a run from flags", () => {
    const { files, packages } = evaluatedBy("src/cli/program.ts")
    expect(files.has("src/config/serviceInput.ts")).toBe(true) // flags are resolved by the same rules
    expect([...packages].filter((name) => /^effect\/(Schema|ParseResult|SchemaAST)$/.test(name))).toEqual([])
    expect([...files].filter((file) => ["src/ConfigFile.ts", "src/Services.ts", "src/config/serviceSchema.ts"].includes(file))).toEqual([])
    // the check itself: the config file's module does reach it
    expect(evaluatedBy("src/ConfigFile.ts").packages.has("effect/Schema")).toBe(true)
  })

  // Date.prototype.toISOString maps ICU's time-zone data (about 1 MB of RSS): times are written by isoTime.
  it("writes times with observe/isoTime.ts, not toISOString", () => {
    const users = sources(src)
      .filter((file) => !file.endsWith("isoTime.ts"))
      .filter((file) => /\.toISOString\(|\.toJSON\(\)/.test(Fs.readFileSync(file, "utf8").replace(/^\s*(\/\/|\*).*$/gm, "")))
      .map((file) => Path.relative(root, file))
    expect(users).toEqual([])
  })
})
