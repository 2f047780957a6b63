/**
 * Reading /proc (Linux). A status request or a metrics scrape asks the same question for every service in a
 * row; what is read is kept for 50 ms, so /proc is read once per request, not once per service.
 *
 * @internal
 */
import * as Fs from "node:fs"

/** How long something read from /proc (or asked of the kernel) serves again: one status request or scrape. */
export const freshFor = 50

const pageSize = 4096

/**
 * Real time in milliseconds (monotonic, process.hrtime), for the synchronous caches of the OS drivers, which no
 * TestClock moves. Not performance.now(): it loads Node's perf_hooks, some 0.7 MB an idle soad would keep.
 */
export const realNow = (): number => Number(process.hrtime.bigint()) / 1e6

/**
 * `compute`, run again only when its last result is more than 50 ms old. Real time (realNow), not the Clock: this
 * synchronous cache bounds how old a read of /proc may be, which no TestClock moves.
 */
export const memo = <A>(compute: () => A): () => A => {
  let value: A | undefined
  let at = -Infinity
  return () => {
    const now = realNow()
    if (value === undefined || now - at > freshFor) {
      value = compute()
      at = now
    }
    return value
  }
}

const files = new Map<string, () => string>()

/** A /proc file ("" where it cannot be read), read at most once every 50 ms. */
export const readFresh = (path: string): string => {
  let reader = files.get(path)
  if (reader === undefined) {
    reader = memo(() => {
      try {
        return Fs.readFileSync(path, "utf8")
      } catch {
        return ""
      }
    })
    files.set(path, reader)
  }
  return reader()
}

/** Resident bytes by process group, over every process. */
const residentByGroup = memo(() => {
  const groups = new Map<number, number>()
  let entries: Array<string>
  try {
    entries = Fs.readdirSync("/proc")
  } catch {
    return groups
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // fields[0] is the state, [2] the process group, [21] the resident set in pages
      const pgid = Number(fields[2])
      groups.set(pgid, (groups.get(pgid) ?? 0) + Number(fields[21]) * pageSize)
    } catch {
      // gone meanwhile
    }
  }
  return groups
})

/** Bytes resident in every process of the group `pgid` (0 where /proc cannot be read). */
export const groupResidentBytes = (pgid: number): number => residentByGroup().get(pgid) ?? 0

/** How many fds soad has open (Linux /proc/self/fd, less the one reading it); undefined elsewhere. */
export const openFds = (): number | undefined => {
  try {
    return Fs.readdirSync("/proc/self/fd").length - 1
  } catch {
    return undefined
  }
}

/** soad's soft limit on open fds (/proc/self/limits); undefined where it cannot be read or is unlimited. */
export const maxFds = (): number | undefined => {
  const line = readFresh("/proc/self/limits").split("\n").find((l) => l.startsWith("Max open files"))
  const soft = Number(line?.slice("Max open files".length).trim().split(/\s+/)[0])
  return Number.isFinite(soft) ? soft : undefined
}
