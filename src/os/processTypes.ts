/**
 * The words of ProcessService that its live driver (os/processes.ts) shares: what to run and how it ended, a
 * connection's peer, the Driver (the operating-system calls under the service, which tests fake) with its armed
 * starts and lanes, and containment (cgroups and the guard). ProcessService.ts exports them; this module holds
 * them so that the driver does not import the service it serves.
 *
 * @internal
 */
import type * as AppLogs from "../observe/appLogs.js"
import type * as Signal from "../Signal.js"
import type * as Cgroup from "./cgroup.js"
import type * as Guard from "./guard.js"

/** How a process ended: an exit code or a signal (both null if the status was lost). */
export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** What to run. */
export interface SpawnRequest {
  readonly command: readonly [string, ...Array<string>]
  /** Added to soad's own environment, or the whole environment when `inheritEnv` is false. */
  readonly env: Readonly<Record<string, string>>
  readonly inheritEnv: boolean
  readonly cwd: string | undefined
  /** soad's fds of the listeners, in order: the app gets them at 3, 4, … */
  readonly fds: ReadonlyArray<number>
  /** Their names, for `LISTEN_FDNAMES`. */
  readonly fdNames: ReadonlyArray<string>
  /** Run as this user and group (soad must be root). */
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  readonly groups?: ReadonlyArray<number> | undefined
  /**
   * The service's stable name for its processes (letters, digits, `-`, `_`): the app's cgroup is named by it, so
   * a later soad finds what this one left. See `lifecycle.unitOf`.
   */
  readonly unit?: string | undefined
  /**
   * The service's name: with AppLogs that capture (the command's), the app's stdout and stderr are pipes soad
   * reads, and each line is logged and kept under this name (observe/appLogs.ts).
   */
  readonly service?: string | undefined
  /**
   * `--accept`: soad's fd of the connection the app serves: it gets it as its fds 0 and 1 too (`fds` holds it for
   * fd 3); stderr is as for any app. soad closes its own copy itself once the spawn has returned.
   */
  readonly connection?: number | undefined
}

/** `--accept`: who is at the other end of a connection: a TCP peer's address, or a UNIX peer's uid (if known). */
export interface Peer {
  readonly remote?: { readonly ip: string; readonly port: number } | undefined
  readonly uid?: number | undefined
}

/**
 * What becomes of the processes an app starts: "cgroup" (the whole tree dies at a stop, and also after soad is
 * killed), "process group + guard" (daemons that leave the app's process group survive a stop), "process group"
 * (as that, and after a kill -9 of soad only the app itself dies), "none" (not Linux: no parent-death signal).
 */
export type Guarantee = "cgroup" | "process group + guard" | "process group" | "none"

/** Keeping an app's processes together beyond its process group: cgroups and the guard (Linux). */
export interface Containment {
  readonly guarantee: Guarantee
  /** Said once at start: what is guaranteed and, if something is missing, what is not (then at warn level). */
  readonly message: string
  readonly level: "info" | "warn"
  readonly fields: Readonly<Record<string, unknown>>
  /** The cgroup directory of a running app, by its pid, if it has one. */
  readonly cgroupOf: (pid: number) => string | undefined
  /** SIGKILL to every process in a cgroup; how many there were. */
  readonly kill: (cgroup: string) => number
  /** Removes an emptied cgroup; false while processes are still in it. */
  readonly remove: (cgroup: string) => boolean
  /** The app and everything it started are gone: stop guarding it. */
  readonly forget: (pid: number) => void
  /** Cgroups of this unit left by a soad that is dead. */
  readonly leftovers: (unit: string) => ReadonlyArray<string>
}

/**
 * What an armed start did when its connection came: the app's pid, or the error (as `spawn` throws it); or nothing,
 * because the listener at `index` woke only because it no longer listens.
 */
export type ArmOutcome =
  | { readonly _tag: "Started"; readonly index: number; readonly pid: number; readonly spawnMs: number; readonly wokeAtNs: bigint }
  | { readonly _tag: "Failed"; readonly error: unknown }
  | { readonly _tag: "NotListening"; readonly index: number }

/** The operating-system calls under the service; tests give a fake one. */
export interface Driver {
  /**
   * Starts the process in a new process group; throws an Error with `code` (ENOENT, …) on failure. With an
   * `output`, the app's stdout and stderr are pipes whose read ends go to it; without, they are soad's own.
   */
  readonly spawn: (request: SpawnRequest, onExit: (status: ExitStatus) => void, output?: AppLogs.Output) => number
  /**
   * Arms a start: the app is started as by `spawn` as soon as a connection is pending on one of `request.fds`,
   * with nothing between the wake and the fork; `onStarted` then gets the outcome, once (NotListening: a listener
   * woke because it no longer listens, and nothing was started). The function returned
   * disarms a start that has not fired (true), and says false once it has. Absent where the driver cannot.
   */
  readonly arm?: (
    request: SpawnRequest,
    onExit: (status: ExitStatus) => void,
    onStarted: (outcome: ArmOutcome) => void,
    output?: AppLogs.Output
  ) => () => boolean
  /**
   * `--accept`: arms `listeners` with a prepared start of `request` (an instance's; its connection a placeholder).
   * While a start is given (`give`), a connection is taken, `events.admit` asked, and its instance started with the
   * connection as fds 0, 1 and 3 (REMOTE_* for an IP peer), then `started` or `failed` said (the connection then
   * soad's, for `close`). Throws if the spec is wrong or the command cannot be found. Absent where the driver cannot.
   */
  readonly armAccept?: (
    listeners: ReadonlyArray<number>,
    request: SpawnRequest,
    events: DriverLaneEvents,
    output?: AppLogs.Output
  ) => DriverLane
  /** Sends a signal to the process group `pgid`; a group that is gone is not an error. */
  readonly killGroup: (pgid: number, signal: Signal.Signal) => void
  /** Cgroups and the guard, where the platform has them; without it only process groups are used. */
  readonly containment?: Containment | undefined
}

/** What an armed accept (Driver.armAccept) says, from its callbacks. */
export interface DriverLaneEvents {
  readonly admit: (index: number, peer: Peer) => boolean
  readonly started: (pid: number) => void
  /** As `spawn` throws it; `connection`: soad's fd, the caller's now. */
  readonly failed: (error: unknown, connection: number) => void
  readonly acceptFailed: (index: number, error: unknown) => void
  /** An instance exited (every instance of the lane, even after `disarm`). */
  readonly exit: (pid: number, status: ExitStatus) => void
}

/** An armed accept: a start given (throws if it cannot be prepared), taken back, the lane ended; a held connection closed. */
export interface DriverLane {
  readonly give: () => void
  readonly takeBack: () => boolean
  readonly disarm: () => void
  readonly close: (connection: number) => void
}

/** Where the apps' processes are kept together: the cgroup root (or why there is none) and the guard. */
export interface Keeping {
  readonly cgroups?: Cgroup.Root | undefined
  readonly guard?: Guard.Guard | undefined
}
