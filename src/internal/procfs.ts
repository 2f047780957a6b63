/**
 * Process figures from /proc (Linux): the resident memory of a process group.
 *
 * @internal
 */
import * as Fs from "node:fs"

const pageSize = 4096

/** Bytes resident in every process of the group `pgid` (0 where /proc cannot be read). */
export const groupResidentBytes = (pgid: number): number => {
  let total = 0
  let entries: Array<string>
  try {
    entries = Fs.readdirSync("/proc")
  } catch {
    return 0
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // fields[0] is the state, [2] the process group, [21] the resident set in pages
      if (Number(fields[2]) === pgid) total += Number(fields[21]) * pageSize
    } catch {
      // gone meanwhile
    }
  }
  return total
}
