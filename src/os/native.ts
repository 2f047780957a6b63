/**
 * Loads soad's native binding (src/native) and gives it types. The binding is loaded on the first call of
 * `native()`, and only the OS drivers in src/os/ import this module (test/unit/structure.test.ts checks it): the
 * live services (os/sockets.ts for SocketService.layer, os/processes.ts for ProcessService.layer, os/relay.ts for
 * RelayService.layer, os/notifySockets.ts for AppNotify's live sockets, with os/listeners, sentinel, sockDiag),
 * and the drivers of the command line's own edges, which are not part of a service's lifecycle (the control
 * socket's file and its peer check in os/listeners.ts and os/peer.ts, the metrics endpoint's socket in
 * os/listeners.ts, journald's socket in os/journal.ts, the apps' output pipes in os/outputPipes.ts, sd_notify in
 * os/sdNotify.ts, user lookup in os/users.ts, V8's low-memory hint in os/gc.ts). The Activator, the modes and the
 * lifecycle core reach the OS only through the services, so a program that provides its own layers (the unit
 * tests' fakes) never loads the addon (test/integration/without-addon.test.ts runs one with the addon missing).
 *
 * @internal
 */
import * as Fs from "node:fs"
import NodeGypBuild from "node-gyp-build" // bundled (cli/bundle.mjs): no module lookup, nor a source of its own to keep
import { createRequire } from "node:module"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { NativeBindingError, type NativeError } from "./nativeErrors.js"

/** How spawn starts an app (beyond its command, environment and listener fds). */
export interface SpawnOptions {
  readonly cwd?: string | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  readonly groups?: ReadonlyArray<number> | undefined
  readonly listenPid: boolean
  readonly pdeathsig: boolean
  /** An fd open for writing on a cgroup's cgroup.procs: the child joins that cgroup right after setsid. */
  readonly cgroupFd?: number | undefined
  /** Write ends of soad's output pipes (outputPipe): the child gets them as fds 1 and 2. */
  readonly stdoutFd?: number | undefined
  readonly stderrFd?: number | undefined
  /** `--accept`: an accepted connection, the child's fd 0. */
  readonly stdinFd?: number | undefined
}

/** The functions of src/native/soad.c. */
export interface Native {
  /**
   * A listening UNIX socket. A file socket appears at `path` only once its mode and owner are set (null: leave
   * as bound); `dev`/`ino` identify that file (0 for an abstract socket). uid/gid: 0..4294967294.
   */
  readonly listenUnix: (
    path: string,
    abstract: boolean,
    backlog: number,
    mode: number | null,
    uid: number | null,
    gid: number | null
  ) => { readonly fd: number; readonly dev: number; readonly ino: number }
  /**
   * Sets the mode and owner (null: leave as is) of the socket file soad created at `path`, never following a
   * symlink; throws with errno ESTALE if the file there is not that socket (dev/ino) any more.
   */
  readonly chmodSocket: (
    path: string,
    dev: number,
    ino: number,
    mode: number | null,
    uid: number | null,
    gid: number | null
  ) => void
  readonly listenTcp: (ip: string, port: number, backlog: number, v6only: boolean) => number
  readonly probeUnix: (path: string, abstract: boolean) => boolean
  readonly socketInfo: (fd: number) => {
    readonly listening: boolean
    readonly stream: boolean
    readonly family: "unix" | "ipv4" | "ipv6" | "other"
  }
  readonly localAddress: (fd: number) =>
    | { readonly family: "unix"; readonly path: string }
    | { readonly family: "ipv4" | "ipv6"; readonly ip: string; readonly port: number }
  readonly setCloexec: (fd: number) => void
  readonly close: (fd: number) => void
  readonly dup: (fd: number) => number
  /** Is a connection waiting in the backlog now? Never on a listener that was shut down (it polls readable forever). */
  readonly pending: (fd: number) => boolean
  /**
   * Does the listener still listen? An app may shut it down (shutdown(2) on its fd 3, the same socket): then a TCP
   * one stops listening, and a UNIX one refuses every connection.
   */
  readonly listening: (fd: number) => boolean
  /** listen(2) again on a listener that was shut down; true if it listens again (TCP does; UNIX does not). */
  readonly relisten: (fd: number, backlog: number) => boolean
  /** Puts the socket at `from` at fd number `to` (close-on-exec), closing what was there and `from`. */
  readonly replaceFd: (from: number, to: number) => void
  /**
   * Puts a new unbound socket of the same family at `fd` (closing soad's old one), so that its address (an abstract
   * name) can be bound again once nobody else holds the old socket.
   */
  readonly releaseFd: (fd: number) => void
  /** lstat(2) of each path: 6 numbers a path (0 or the errno, mode, uid, gid, dev, ino). */
  readonly lstatPaths: (paths: ReadonlyArray<string>) => Float64Array
  readonly watch: (fd: number, callback: (error: string | null) => void) => number
  readonly unwatch: (id: number) => void
  /** A one-shot watch until `fd` can be written to; its id (for unwatch). */
  readonly watchWritable: (fd: number, callback: (error: string | null) => void) => number
  /** Sets O_NONBLOCK on `fd`'s file description. */
  readonly nonBlocking: (fd: number) => void
  /**
   * Looks every `intervalMs` (in C, on Node's loop) whether a connection is pending on any of `fds`; `callback` runs
   * once: null when none is, or what failed. Returns an id for `cancelDrained`.
   */
  readonly awaitDrained: (fds: ReadonlyArray<number>, intervalMs: number, callback: (error: string | null) => void) => number
  /** Ends an `awaitDrained` that has not called back; nothing for one that has. */
  readonly cancelDrained: (id: number) => void
  readonly countStart: (fd: number) => boolean
  readonly countRead: (fd: number) => { readonly ago: number; readonly rearmed: boolean }
  readonly countStop: (fd: number) => void
  readonly countOwner: (fd: number) => { readonly owner: number; readonly signal: number; readonly async: boolean }
  readonly sentinelMemory: (listeners: number) => { readonly id: number; readonly fd: number } | null
  readonly sentinelRead: (id: number) => {
    /** Per listener, read before `ago`: odd while the sentinel has it on the quiet signal after a connection. */
    readonly windows: ReadonlyArray<number>
    readonly ago: ReadonlyArray<number>
    readonly armed: number
    /** The signal the sentinel counts with. */
    readonly signal: number
    /** The signal it switches a listener to for 100 ms after a connection (blocked: it only sets a pending bit). */
    readonly quiet: number
  }
  readonly sentinelFree: (id: number) => void
  readonly spawn: (
    file: string,
    argv: ReadonlyArray<string>,
    env: ReadonlyArray<string>,
    fds: ReadonlyArray<number>,
    options: SpawnOptions,
    onExit: (code: number | null, signal: number | null, pid: number) => void
  ) => number
  /**
   * The cold path: arms the listeners with a prepared start (arguments after listenerFds as for spawn, but the
   * cgroup directory is opened and the output pipes made only at the start: an armed service holds no fd). The
   * first connection pending on listenerFds[index] makes the poll callback start the app at once; then `onStarted`
   * runs, once, with the pid or the error, how long the start took, CLOCK_MONOTONIC at the wake, and the read ends
   * of the app's stdout and stderr pipes (-1: none). pid and error both null: listenerFds[index] woke because it no
   * longer listens (an app shut it down), and nothing was started. Throws (nothing armed) if the spec is wrong or
   * the command cannot be found.
   */
  readonly armSpawn: (
    listenerFds: ReadonlyArray<number>,
    file: string,
    argv: ReadonlyArray<string>,
    env: ReadonlyArray<string>,
    fds: ReadonlyArray<number>,
    options: Omit<SpawnOptions, "cgroupFd" | "stdoutFd" | "stderrFd">,
    onExit: (code: number | null, signal: number | null) => void,
    onStarted: (
      index: number,
      pid: number | null,
      error: NativeError | null,
      spawnMs: number,
      wokeAtNs: bigint,
      stdoutRead: number,
      stderrRead: number
    ) => void,
    armOptions: { readonly cgroup?: string | undefined; readonly outputs: 0 | 1 | 2 }
  ) => number
  /** Ends an armed start that has not fired: true; false if it had fired. */
  readonly disarmSpawn: (id: number) => boolean
  /**
   * `--accept`'s lane (lane.c): arms the listeners with a prepared start of an instance (arguments as for spawn,
   * without fds and the cgroup and stdio fds: each instance gets its connection as fds 0, 1 and 3, REMOTE_ADDR and
   * REMOTE_PORT for an IP peer, and with `stderr` a stderr pipe whose read end `onStarted` gives). Nothing is polled
   * until `acceptOpen` gives a start. Then a connection on listenerFds[index] is accepted and `admit` asked (ip null
   * and port -1 for a UNIX peer; uid -1 where unknown): false closes it (the start stays given; admit must not close
   * or disarm the lane), true starts its instance with the start given, and `onStarted` follows: the pid, or the
   * error with `connection`, the connection's fd, which is then the caller's (to close, or start again; -1 once an
   * instance has it). `onFailed`: accepting failed, the start is the caller's again. `onExit` as for spawn, for every
   * instance. Throws (nothing armed) if the spec is wrong or the command cannot be found.
   */
  readonly acceptArm: (
    listenerFds: ReadonlyArray<number>,
    file: string,
    argv: ReadonlyArray<string>,
    env: ReadonlyArray<string>,
    options: Omit<SpawnOptions, "cgroupFd" | "stdinFd" | "stdoutFd" | "stderrFd">,
    onExit: (code: number | null, signal: number | null, pid: number) => void,
    admit: (index: number, ip: string | null, port: number, uid: number) => boolean,
    onStarted: (index: number, pid: number | null, error: NativeError | null, connection: number, stderrRead: number) => void,
    onFailed: (index: number, error: NativeError) => void,
    armOptions: { readonly stderr: boolean }
  ) => number
  /** Gives the lane a start (a permit, a token held; the instance's cgroup directory, or null): it polls till it is used. */
  readonly acceptOpen: (id: number, cgroup: string | null) => void
  /** Takes back a start given and not used: true (its cgroup directory is the caller's again); false if none was. */
  readonly acceptClose: (id: number) => boolean
  /** Ends the lane (a start given is taken back); the instances it started live on. */
  readonly acceptDisarm: (id: number) => void
  /** A pipe with both ends close-on-exec, for an app's stdout or stderr. */
  readonly outputPipe: () => { readonly read: number; readonly write: number }
  /** The newlines in a buffer. */
  readonly countLines: (buffer: Buffer) => number
  /**
   * Asks V8 to give back what it can (node::LowMemoryNotification); false where the runtime lacks it. `flushCode`:
   * that GC also drops the bytecode of every function not running (memory.c).
   */
  readonly lowMemory: (flushCode?: boolean) => boolean
  readonly lookupUser: (nameOrUid: string | number) => {
    readonly uid: number
    readonly gid: number
    readonly name: string
    readonly home: string
    readonly shell: string
    readonly groups: ReadonlyArray<number>
  } | null
  readonly lookupGroup: (name: string) => number | null
  readonly notify: (path: string, message: string) => void
  readonly journalConnect: (path: string) => number
  readonly journalSend: (fd: number, entry: string) => boolean
  /** A datagram socket bound at path ("@name": abstract), non-blocking, close-on-exec, with SO_PASSCRED. */
  readonly notifyListen: (path: string) => number
  /** The datagrams waiting on a notifyListen socket (up to 64), each with its sender's pid and uid. */
  readonly notifyRead: (fd: number) => ReadonlyArray<{ readonly message: string; readonly pid: number; readonly uid: number }>
  readonly peerCredentials: (fd: number) => { readonly pid: number; readonly uid: number; readonly gid: number }
  /**
   * `--accept`: one connection from a listener (close-on-exec, blocking), with the peer's IP and port for TCP (an
   * IPv4-mapped IPv6 peer as IPv4), its uid for UNIX (SO_PEERCRED; absent if unreadable); null when none waits.
   * Throws with errno (EMFILE, …) and syscall accept4.
   */
  readonly acceptConnection: (
    fd: number
  ) => { readonly fd: number; readonly ip?: string; readonly port?: number; readonly uid?: number } | null
  readonly relaySupported: () => boolean
  readonly relayOnClose: (callback: (id: number) => void) => void
  /**
   * Accepts on a listener. Out of fds it pauses (100 ms doubling to 1 s) and calls onPressure("exhausted", errno
   * name, syscall, RLIMIT_NOFILE or -1), then onPressure("recovered", null, null, limit) once it accepts again.
   */
  readonly relayListen: (
    fd: number,
    group: number,
    onAccept: (id: number) => void,
    onPressure: (event: "exhausted" | "recovered", code: string | null, syscall: string | null, limit: number) => void
  ) => number
  /** full: the group's listeners stop accepting (connections wait in the backlog); false: they accept again. */
  readonly relayHold: (group: number, full: boolean) => void
  /** RLIMIT_NOFILE's soft limit, -1 if unlimited. */
  readonly relayFdLimit: () => number
  readonly relayUnlisten: (watch: number) => void
  readonly relayConnect: (id: number, hostOrPath: string, port: number, onDone: (error: string | null) => void) => void
  readonly relayClose: (id: number) => void
  /** The bytes a held connection's client sent so far, unread (at most 16 KiB; empty: none yet); null: gone or not held. */
  readonly relayPeek: (id: number) => Buffer | null
  /** soad answers a held connection: what its client sent is dropped, `response` written, the connection closed. */
  readonly relayAnswer: (id: number, response: Buffer) => void
  /**
   * The kernel's TCP sockets of one family (4 or 6) in `states` (a mask of 1 << TCP_*), whose local port lies in
   * one of `ranges` ([lo, hi, lo, hi, …], at most 1024 ranges; null: any port), as the raw NETLINK_SOCK_DIAG reply
   * (os/sockDiag.ts decodes it). Throws with errno where the kernel has no sock_diag or answers with an error.
   */
  readonly diagInet: (family: 4 | 6, states: number, ranges: ReadonlyArray<number> | null) => Buffer
  /** The same for UNIX sockets; `show` is unix_diag's UDIAG_SHOW_* mask. */
  readonly diagUnix: (states: number, show: number) => Buffer
  readonly relayStats: (group: number) => {
    readonly open: number
    readonly bytesIn: number
    readonly bytesOut: number
    readonly ago: number
  }
}

/** This file's path: in soad's bundles (cli/bundle.mjs), the bundle's own, which needs no node:url. */
declare const SOAD_FILENAME: string | undefined
const thisFile = (): string => typeof SOAD_FILENAME === "string" ? SOAD_FILENAME : fileURLToPath(import.meta.url)

/** The directory holding binding.gyp, found upwards from this file (src/internal, dist/internal or dist). */
const nativeDir = (): string => {
  let dir = Path.dirname(thisFile())
  for (;;) {
    const candidate = Path.join(dir, "src", "native")
    if (Fs.existsSync(Path.join(candidate, "binding.gyp"))) return candidate
    const parent = Path.dirname(dir)
    if (parent === dir) throw new Error("soad: cannot find src/native/binding.gyp above " + thisFile())
    dir = parent
  }
}

let loaded: Native | undefined
let loadedFrom: string | undefined

/** The binding, loaded once: a prebuild for this platform first, else a local build. */
export const native = (): Native => {
  if (loaded !== undefined) return loaded
  const dir = nativeDir()
  const require = createRequire(thisFile())
  try {
    loadedFrom = NodeGypBuild.resolve(dir)
    loaded = require(loadedFrom) as Native
  } catch (cause) {
    const said = (cause instanceof Error ? cause.message : String(cause)).replace(/\s+/g, " ").trim()
    throw new NativeBindingError(
      `cannot load the native binding for ${process.platform}-${process.arch} (Node ${process.versions.node}) ` +
        `from ${dir}: ${said}; build it with \`npx node-gyp rebuild --directory=${dir}\` ` +
        "(needs python3, make and a C compiler)",
      { cause }
    )
  }
  return loaded
}

/** The binding if something has loaded it already, else undefined (and no attempt to load it). */
export const nativeIfLoaded = (): Native | undefined => loaded

/**
 * The path of one of soad's small helper programs (built beside the addon from src/native/helper/), or undefined
 * if it was not built for this platform. They sit next to the addon that was loaded (a prebuild or a local build).
 */
export const helperPath = (name: string): string | undefined => {
  native()
  const candidates = [
    ...(loadedFrom === undefined ? [] : [Path.join(Path.dirname(loadedFrom), name)]),
    Path.join(nativeDir(), "build", "Release", name)
  ]
  return candidates.find((candidate) => {
    try {
      Fs.accessSync(candidate, Fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}
