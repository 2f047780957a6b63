/**
 * The file system @effect/cli asks for, on Node's `fs`: it checks that a path exists, what it is, and reads a file. NodeFileSystem
 * would do the same but loads `node:crypto` and `fs/promises` for what soad never does (temporary files, watching):
 * about 3 MB that a sleeping soad would keep (measured in `npm run bench`'s idle figure).
 *
 * @internal
 */
import * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"

const failure = (method: string, path: string, error: unknown) =>
  new PlatformError.SystemError({
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    reason: (error as NodeJS.ErrnoException).code === "ENOENT" ? "NotFound" : "Unknown",
    description: error instanceof Error ? error.message : String(error)
  })

const typeOf = (stat: Fs.Stats): FileSystem.File.Type =>
  stat.isFile()
    ? "File"
    : stat.isDirectory()
    ? "Directory"
    : stat.isSymbolicLink()
    ? "SymbolicLink"
    : stat.isBlockDevice()
    ? "BlockDevice"
    : stat.isCharacterDevice()
    ? "CharacterDevice"
    : stat.isFIFO()
    ? "FIFO"
    : stat.isSocket()
    ? "Socket"
    : "Unknown"

const info = (stat: Fs.Stats): FileSystem.File.Info => ({
  type: typeOf(stat),
  mtime: Option.some(stat.mtime),
  atime: Option.some(stat.atime),
  birthtime: Option.some(stat.birthtime),
  dev: stat.dev,
  rdev: Option.some(stat.rdev),
  ino: Option.some(stat.ino),
  mode: stat.mode,
  nlink: Option.some(stat.nlink),
  uid: Option.some(stat.uid),
  gid: Option.some(stat.gid),
  size: FileSystem.Size(stat.size),
  blksize: Option.some(FileSystem.Size(stat.blksize)),
  blocks: Option.some(stat.blocks)
})

/** `access`, `exists`, `stat` and reading a file on Node's fs (what @effect/cli uses); every other method fails. */
export const layer = FileSystem.layerNoop({
  access: (path) => Effect.try({ try: () => Fs.accessSync(path), catch: (e) => failure("access", path, e) }),
  exists: (path) => Effect.sync(() => Fs.existsSync(path)),
  stat: (path) => Effect.try({ try: () => info(Fs.statSync(path)), catch: (e) => failure("stat", path, e) }),
  readFile: (path) => Effect.try({ try: () => new Uint8Array(Fs.readFileSync(path)), catch: (e) => failure("readFile", path, e) })
})
