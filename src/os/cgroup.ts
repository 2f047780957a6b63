/**
 * Linux cgroup v2 for the apps: one cgroup per running app, under soad's own cgroup, so that a stop (or the
 * guard, or the next soad) can kill everything the app started, daemons that left its process group included.
 * Only core files are used (cgroup.procs, cgroup.kill, cgroup.events): no controller is enabled anywhere, so the
 * no-internal-process rule never applies and soad stays where it is.
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { realNow } from "./procfs.js"

/** Where soad may create cgroups, or why it may not. */
export type Root = { readonly _tag: "Root"; readonly dir: string } | { readonly _tag: "Unusable"; readonly reason: string }

/** Undoes mountinfo's octal escapes (`\040` for a space). */
const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))

/** The cgroup2 mount (`mountinfo` text): its mount point and the cgroup path it shows at that point. */
export const findMount = (mountinfo: string): { readonly root: string; readonly mountPoint: string } | undefined => {
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ")
    if (left === undefined || right === undefined || right.split(" ")[0] !== "cgroup2") continue
    const fields = left.split(" ")
    if (fields[3] !== undefined && fields[4] !== undefined) return { root: unescape(fields[3]), mountPoint: unescape(fields[4]) }
  }
  return undefined
}

/** The cgroup v2 path of a process (`/proc/PID/cgroup` text: the `0::/path` line). */
export const ownPath = (procCgroup: string): string | undefined =>
  procCgroup.split("\n").find((line) => line.startsWith("0::"))?.slice(3)

/** The directory of soad's own cgroup, if soad may create cgroups under it (tried: a probe is made and removed). */
export const findRoot = (): Root => {
  let mountinfo: string, procCgroup: string
  try {
    mountinfo = Fs.readFileSync("/proc/self/mountinfo", "utf8")
    procCgroup = Fs.readFileSync("/proc/self/cgroup", "utf8")
  } catch (error) {
    return { _tag: "Unusable", reason: `cannot read /proc: ${(error as Error).message}` }
  }
  const mount = findMount(mountinfo)
  if (mount === undefined) return { _tag: "Unusable", reason: "no cgroup2 file system is mounted" }
  const own = ownPath(procCgroup)
  if (own === undefined || own.includes("..") || !own.startsWith("/")) {
    return { _tag: "Unusable", reason: "soad is in no cgroup v2 (/proc/self/cgroup has no 0:: line)" }
  }
  const relative = mount.root === "/" ? own : own === mount.root || own.startsWith(mount.root + "/") ? own.slice(mount.root.length) : undefined
  if (relative === undefined) return { _tag: "Unusable", reason: `soad's cgroup ${own} is outside the cgroup2 mount` }
  const dir = Path.join(mount.mountPoint, relative).replace(/(.)\/$/, "$1")
  const probe = Path.join(dir, `soad.probe.${process.pid}`)
  try {
    Fs.accessSync(Path.join(dir, "cgroup.procs"), Fs.constants.W_OK)
    Fs.mkdirSync(probe)
    Fs.rmdirSync(probe)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "an error"
    return { _tag: "Unusable", reason: `soad may not create cgroups in ${dir} (${code}): run it as root or with systemd's Delegate=yes` }
  }
  return { _tag: "Root", dir }
}

/** The name of an app's cgroup: the service's stable unit, soad's pid, and a number if that one is taken. */
export const name = (unit: string, pid: number, n: number): string => `soad.${unit}.${pid}` + (n === 0 ? "" : `.${n}`)

/** Creates a cgroup (an existing one is fine). Throws the fs error. */
export const create = (dir: string): void => {
  try {
    Fs.mkdirSync(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
  }
}

/** Opens the cgroup's directory (close-on-exec): the app is created in it (clone3), or joins it through it. */
export const openDir = (dir: string): number => Fs.openSync(dir, Fs.constants.O_RDONLY | Fs.constants.O_DIRECTORY)

/** The pids in a cgroup; none if it is gone. */
const members = (dir: string): Array<number> => {
  try {
    return Fs.readFileSync(Path.join(dir, "cgroup.procs"), "utf8").split("\n").filter((line) => line !== "").map(Number)
  } catch {
    return []
  }
}

/**
 * SIGKILL to every process in the cgroup (cgroup.kill, kernel >= 5.14, else one by one); how many there were.
 * Only a cgroup soad names (`soad.…`): never the one soad or its parent runs in.
 */
export const kill = (dir: string): number => {
  if (!Path.basename(dir).startsWith("soad.")) return 0
  const pids = members(dir)
  if (pids.length === 0) return 0
  try {
    Fs.writeFileSync(Path.join(dir, "cgroup.kill"), "1")
  } catch {
    // no cgroup.kill (kernel < 5.14): one by one; a pid that forks meanwhile is caught on the next round
  }
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone already
    }
  }
  return pids.length
}

/** Removes an empty cgroup; false while it still has processes (try again after they are gone). */
export const remove = (dir: string): boolean => {
  try {
    Fs.rmdirSync(dir)
    return true
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ENOENT") return true
    if (code === "EBUSY") return false
    throw error
  }
}

/** Is there a process with this pid? */
const exists = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** The cgroups under `root` that soads now dead left, by unit (`soad.UNIT.PID[.N]`). */
export const leftoverIndex = (root: string, ownPid: number): Map<string, Array<string>> => {
  const index = new Map<string, Array<string>>()
  let entries: Array<string>
  try {
    entries = Fs.readdirSync(root)
  } catch {
    return index
  }
  const dead = new Map<number, boolean>()
  for (const entry of entries) {
    const [prefix, unit, pid, n, ...rest] = entry.split(".")
    if (prefix !== "soad" || unit === undefined || unit === "" || !/^\d+$/.test(pid ?? "") || rest.length > 0) continue
    if (n !== undefined && !/^\d+$/.test(n)) continue
    const owner = Number(pid)
    if (owner === ownPid) continue
    if (!dead.has(owner)) dead.set(owner, !exists(owner))
    if (!dead.get(owner)) continue
    const list = index.get(unit) ?? []
    list.push(Path.join(root, entry))
    index.set(unit, list)
  }
  return index
}

/**
 * The index, read at most once a second: a start or a reload of 1,000 services asks for each (once a listing each).
 * Real time (realNow), not the Clock: it bounds how old a listing of the cgroup tree may be.
 */
let remembered: { readonly root: string; readonly at: number; readonly index: Map<string, Array<string>> } | undefined

/** Cgroups of this unit that another soad, now dead, left under `root`. */
export const leftovers = (root: string, unit: string, ownPid: number): Array<string> => {
  const now = realNow()
  if (remembered === undefined || remembered.root !== root || now - remembered.at > 1000) {
    remembered = { root, at: now, index: leftoverIndex(root, ownPid) }
  }
  const key = unit.replace(/[^A-Za-z0-9_-]/g, "")
  const found = remembered.index.get(key) ?? []
  remembered.index.delete(key) // handed out: the caller kills and removes them
  return found
}
