/**
 * lstat of many paths at once (os/pathStats.ts, the addon's lstatPaths), for `soad status`'s socket files: the
 * same answer as fs.lstatSync for a socket, a file, a directory, a symlink (itself, not its target), a missing
 * path, a path too long and one with a NUL byte; and the same when the addon is not loaded (fs.lstatSync itself).
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, expect, it } from "vitest"
import { native } from "../../src/os/native.js"
import { lstatAll } from "../../src/os/pathStats.js"

const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-pathstats-"))
afterAll(() => Fs.rmSync(d, { recursive: true, force: true }))

/** What fs.lstatSync says of `path`: the same fields, or undefined when it throws. */
const byNode = (path: string) => {
  try {
    const { dev, gid, ino, mode, uid } = Fs.lstatSync(path)
    return { mode, uid, gid, dev, ino }
  } catch {
    return undefined
  }
}

it("reads each path as fs.lstatSync does, in one call for all of them", async () => {
  const socket = Path.join(d, "app.sock")
  const server = Net.createServer().listen(socket)
  await new Promise((resolve) => server.once("listening", resolve))
  const file = Path.join(d, "file")
  Fs.writeFileSync(file, "x")
  Fs.chmodSync(file, 0o640)
  const link = Path.join(d, "link")
  Fs.symlinkSync(socket, link)
  const paths = [socket, file, d, link, Path.join(d, "missing"), Path.join(d, "x".repeat(5000)), `${file}\u0000tail`, "relative-missing"]
  native() // loaded: lstatAll asks the addon
  const read = lstatAll(paths)
  expect(read).toEqual(paths.map((path) => (path.includes("\u0000") ? undefined : byNode(path))))
  expect(read[0]!.mode & 0o170000).toBe(0o140000) // the socket is a socket
  expect(read[3]!.mode & 0o170000).toBe(0o120000) // the link itself, not its target
  expect(read[4]).toBeUndefined()
  expect(native().lstatPaths([]).length).toBe(0)
  expect(() => native().lstatPaths([socket, 3 as unknown as string])).toThrow(/string/)
  await new Promise((resolve) => server.close(resolve))
})
