/**
 * The file system @effect/cli asks for, on Node's `fs`: it checks that a path exists and reads a file. NodeFileSystem
 * would do the same but loads `node:crypto` and `fs/promises` for what soad never does (temporary files, watching):
 * about 3 MB that a sleeping soad would keep (measured in `npm run bench`'s idle figure).
 *
 * @internal
 */
import * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"

const failure = (method: string, path: string, error: unknown) =>
  new PlatformError.SystemError({
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    reason: (error as NodeJS.ErrnoException).code === "ENOENT" ? "NotFound" : "Unknown",
    description: error instanceof Error ? error.message : String(error)
  })

/** `access`, `exists`, `readFile` and `readFileString` on Node's fs; every other method fails (soad uses none). */
export const layer = FileSystem.layerNoop({
  access: (path) => Effect.try({ try: () => Fs.accessSync(path), catch: (e) => failure("access", path, e) }),
  exists: (path) => Effect.sync(() => Fs.existsSync(path)),
  readFile: (path) => Effect.try({ try: () => new Uint8Array(Fs.readFileSync(path)), catch: (e) => failure("readFile", path, e) })
})
