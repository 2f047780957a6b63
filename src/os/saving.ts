/**
 * The RAM soad saves a service, the reason it exists: the app's peak resident memory while it ran (cgroup
 * memory.peak where the memory controller gives one, else the largest process-group RSS sampled: when status or
 * metrics are read, and at each stop), and that peak times the time the app was stopped since.
 * The accounting is pure; the sample reads /proc and the cgroup file system.
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Cgroup from "./cgroup.js"
import * as Procfs from "./procfs.js"

/** A service's memory account (times in Clock ms). */
export interface Account {
  /** The largest sample of the current run (0: none yet). */
  readonly runPeak: number
  /** The peak of the latest finished run that had a sample. */
  readonly lastPeak: number | undefined
  /** When the app stopped, while it stays stopped. */
  readonly stoppedAt: number | undefined
  /** Byte-milliseconds saved by the stopped periods that have ended. */
  readonly savedByteMs: number
}

/** Nothing known yet: no run, nothing saved (an app never seen running saves nothing we can measure). */
export const empty: Account = { runPeak: 0, lastPeak: undefined, stoppedAt: undefined, savedByteMs: 0 }

/** The account after a sample of the running app. */
export const sampled = (account: Account, bytes: number): Account =>
  bytes > account.runPeak ? { ...account, runPeak: bytes } : account

/** Byte-milliseconds saved up to `at`: the ended stopped periods and the current one. */
export const savedAt = (account: Account, at: number): number =>
  account.savedByteMs +
  (account.stoppedAt !== undefined && account.lastPeak !== undefined ? account.lastPeak * Math.max(0, at - account.stoppedAt) : 0)

/** The bytes the stopped app does not use now: its latest peak while it is stopped, else 0 (the rate `savedAt` grows at). */
export const savingNow = (account: Account): number =>
  account.stoppedAt !== undefined && account.lastPeak !== undefined ? account.lastPeak : 0

/** The app starts at `at`: the stopped period ends. */
export const started = (account: Account, at: number): Account => ({
  runPeak: 0,
  lastPeak: account.lastPeak,
  stoppedAt: undefined,
  savedByteMs: savedAt(account, at)
})

/** The app stopped at `at`: its run's peak is what each stopped second saves from now on. */
export const stopped = (account: Account, at: number): Account => ({
  runPeak: 0,
  lastPeak: account.runPeak > 0 ? account.runPeak : account.lastPeak,
  stoppedAt: at,
  savedByteMs: account.savedByteMs
})

/** The peak to show: the current run's while it runs (once sampled), else the latest run's. */
export const peak = (account: Account, running: boolean): number | undefined =>
  running && account.runPeak > 0 ? account.runPeak : account.lastPeak

let mount: { readonly root: string; readonly mountPoint: string } | undefined | null = null

/** The cgroup2 mount, read once. */
const cgroupMount = () => {
  if (mount === null) {
    try {
      mount = Cgroup.findMount(Fs.readFileSync("/proc/self/mountinfo", "utf8"))
    } catch {
      mount = undefined
    }
  }
  return mount
}

/**
 * memory.peak of the app's own cgroup (one soad made for this run: `soad.…`), where the memory controller is
 * enabled there (kernel >= 5.19); undefined otherwise.
 */
export const cgroupPeak = (pid: number): number | undefined => {
  const m = cgroupMount()
  if (m === undefined) return undefined
  let own: string | undefined
  try {
    own = Cgroup.ownPath(Fs.readFileSync(`/proc/${pid}/cgroup`, "utf8"))
  } catch {
    return undefined
  }
  if (own === undefined || !Path.basename(own).startsWith("soad.")) return undefined
  const relative = m.root === "/" ? own : own.startsWith(m.root + "/") ? own.slice(m.root.length) : undefined
  if (relative === undefined) return undefined
  try {
    const value = Number(Fs.readFileSync(Path.join(m.mountPoint, relative, "memory.peak"), "utf8").trim())
    return Number.isFinite(value) && value > 0 ? value : undefined
  } catch {
    return undefined
  }
}

/** One sample of a running app's memory: its cgroup's memory.peak, else its process group's RSS now. */
export const sample = (pid: number): number => cgroupPeak(pid) ?? Procfs.groupResidentBytes(pid)
