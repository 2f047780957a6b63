/**
 * Creating, adopting and releasing listening sockets, with errors a user can act on.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Address from "../Address.js"
import type * as ServiceConfig from "../ServiceConfig.js"
import * as Fields from "../config/fields.js"
import { type Native, native } from "./native.js"
import { errnoName } from "./nativeErrors.js"

/**
 * Opening a listener failed; `message` says what is wrong and what to do. `usage`: the way soad was started is
 * wrong (its LISTEN_* environment), a usage error (exit 2).
 */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly address: string
  readonly message: string
  readonly cause?: unknown
  readonly usage?: boolean
}> {}

/** Sockets soad received from its own parent (`LISTEN_FDS`), by fd, with their names. */
export interface Inherited {
  readonly fds: ReadonlyArray<{ readonly fd: number; readonly name: string }>
  /**
   * Why the LISTEN_* variables cannot be trusted (malformed, too many fds, no LISTEN_PID, another process's),
   * if so; then `fds` is empty.
   */
  readonly invalid: string | undefined
}

/** The most inherited sockets soad accepts, as sd_listen_fds' callers do: 1024. */
const maxInheritedFds = 1024

/** soad's soft limit of open files (RLIMIT_NOFILE), where /proc tells it; undefined elsewhere. */
const openFileLimit = (): number | undefined => {
  try {
    const match = /^Max open files\s+(\d+)\s/m.exec(Fs.readFileSync("/proc/self/limits", "utf8"))
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

/** A value from the environment, quoted and cut short, safe to print on one line. */
const shown = (value: string): string => JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}...` : value)

/**
 * Reads and removes `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` from soad's environment (so they never
 * reach an app by inheritance), as sd_listen_fds(unset_environment = 1) does; checks them before any fd is
 * trusted: LISTEN_PID must be soad's pid, LISTEN_FDS a whole number up to 1024 (or the open-file limit if lower).
 */
export const takeInherited = (env: NodeJS.ProcessEnv, pid: number, limit = openFileLimit()): Inherited => {
  const count = env.LISTEN_FDS
  const listenPid = env.LISTEN_PID
  const names = env.LISTEN_FDNAMES
  delete env.LISTEN_FDS
  delete env.LISTEN_PID
  delete env.LISTEN_FDNAMES
  const refuse = (invalid: string): Inherited => ({ fds: [], invalid })
  if (count === undefined) return { fds: [], invalid: undefined }
  if (listenPid === undefined) {
    return refuse("LISTEN_FDS is set without LISTEN_PID, so the sockets may be another process's: the launcher must set LISTEN_PID to soad's pid")
  }
  if (listenPid !== String(pid)) {
    return refuse(`LISTEN_PID is ${shown(listenPid)}, not soad's pid ${pid}: the sockets are another process's`)
  }
  const max = Math.min(maxInheritedFds, limit ?? maxInheritedFds)
  if (!/^\d{1,7}$/.test(count) || Number(count) > max) {
    return refuse(`LISTEN_FDS is ${shown(count)}: expected a whole number from 0 to ${max} (at most ${maxInheritedFds}, and no more than the open-file limit)`)
  }
  const nameList = names?.split(":") ?? []
  const fds = Array.from({ length: Number(count) }, (_, i) => ({ fd: 3 + i, name: nameList[i] ?? "unknown" }))
  return { fds, invalid: undefined }
}

const fail = (address: string, message: string, cause?: unknown) =>
  Effect.fail(new ListenError({ address, message, cause }))

/**
 * The UNIX socket file soad created for a listener: its device and inode (a whole Stats is 1 KB per listener).
 * Changed in place when soad makes the socket anew (`revive`), so every holder sees the file that is soad's now.
 */
export interface SocketFile {
  dev: number
  ino: number
}

/** An opened listener: soad's fd, and the socket file soad created for it (UNIX paths only). */
export interface Opened {
  readonly fd: number
  readonly file: SocketFile | undefined
}

/** Removes a UNIX socket file only if it is still the file soad created (same device and inode). */
const unlinkOwnFile = (path: string, created: SocketFile): void => {
  try {
    const now = Fs.lstatSync(path)
    if (now.isSocket() && now.ino === created.ino && now.dev === created.dev) Fs.unlinkSync(path)
  } catch {
    // already gone, or replaced by something that is not ours: leave it
  }
}

/** Releases a UNIX socket file: only if it is still the file soad created (same device and inode). */
const removeOwnFile = (path: string, created: SocketFile) => Effect.sync(() => unlinkOwnFile(path, created))

const closeFd = (n: Native, fd: number) => Effect.sync(() => n.close(fd))

/**
 * Runs `close` when the scope closes. Scope.addFinalizer, not Effect.addFinalizer: that keeps a copy of the
 * fiber's FiberRefs with every listener (about 1 KB each with 1,000), and closing an fd needs none of them.
 */
const onClose = (close: Effect.Effect<void>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizer(scope, close))

/**
 * Makes `path` free for a new socket: nothing is there, or a stale socket nobody listens on (removed). Anything
 * else (a file that is not a socket, a live socket, an unreadable directory) fails and stays untouched.
 */
const clearUnixPath = (n: Native, path: string): Effect.Effect<void, ListenError> =>
  Effect.gen(function*() {
    let existing: Fs.Stats | undefined
    try {
      existing = Fs.lstatSync(path)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === "ENOTDIR") return yield* fail(path, `${path}: a parent of it is not a directory`)
      if (code === "EACCES") return yield* fail(path, `${path}: permission denied: run soad as a user who may write there`)
      if (code !== "ENOENT") return yield* fail(path, `${path}: ${(error as Error).message}`, error)
    }
    if (existing === undefined) return
    if (!existing.isSocket()) {
      return yield* fail(path, `${path} exists and is not a socket; soad will not replace it: remove it or choose another path`)
    }
    let live: boolean
    try {
      live = n.probeUnix(path, false)
    } catch (error) {
      return yield* fail(path, `${path}: cannot check the existing socket (${errnoName(error)}): remove it or choose another path`, error)
    }
    if (live) {
      return yield* fail(path, `${path}: another process is listening on it: stop it or choose another path`)
    }
    try {
      Fs.unlinkSync(path) // stale: nobody listens
    } catch (error) {
      return yield* fail(path, `${path}: cannot replace the stale socket: ${(error as Error).message}`, error)
    }
    yield* Effect.annotateLogs(Effect.logDebug(`replaced the stale socket ${path}`), "event", "stale_replaced")
  })

/** Creates the socket file, listening: it admits nobody (mode 0) until its mode and owner are set. */
const createUnix = (n: Native, path: string, options: ServiceConfig.SocketOptions) =>
  Effect.try({
    try: () =>
      n.listenUnix(path, false, options.backlog, options.mode ?? Fields.defaultSocketMode, options.uid ?? null, options.gid ?? null),
    catch: (error) => {
      const code = errnoName(error)
      const dir = Path.dirname(path)
      const message = code === "ENOENT"
        ? `${path}: the directory ${dir} does not exist: create it first`
        : code === "ENOTDIR"
        ? `${path}: a parent of it is not a directory`
        : code === "EACCES" || code === "EPERM"
        ? `${path}: permission denied: soad cannot create a socket in ${dir}`
        : code === "EADDRINUSE" || code === "EEXIST"
        ? `${path}: something else was created there just now: try again`
        : code === "ENAMETOOLONG"
        ? `${path}: the path is too long for a UNIX socket: use a shorter one`
        : code === "EROFS"
        ? `${path}: ${dir} is on a read-only file system`
        : `${path}: ${(error as Error).message}`
      return new ListenError({ address: path, message, cause: error })
    }
  })

/**
 * A listening UNIX socket file at `path` (a stale socket there is replaced, anything else is an error); closing
 * the scope closes it and removes the file if it is still the one soad created.
 */
export const openUnix = (
  n: Native,
  path: string,
  options: ServiceConfig.SocketOptions
): Effect.Effect<Opened, ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* clearUnixPath(n, path)
    const { dev, fd, ino } = yield* createUnix(n, path, options)
    const file = { dev, ino }
    yield* onClose(closeFd(n, fd).pipe(Effect.zipRight(removeOwnFile(path, file))))
    return { fd, file }
  })

/**
 * A listening UNIX socket file at `path` as `openUnix` makes it, for a server of soad's own that node:net serves
 * (the metrics endpoint): a copy of its fd, which node:net owns (and closes); the scope closes soad's fd and
 * removes the file if it is still the one soad created.
 */
export const openUnixServed = (
  path: string,
  options: ServiceConfig.SocketOptions
): Effect.Effect<number, ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const n = native()
    const { fd } = yield* openUnix(n, path, options)
    return n.dup(fd)
  })

/** Does a process listen on the UNIX socket file at `path` (the control socket's)? Throws if it cannot be told. */
export const probeUnix = (path: string): boolean => native().probeUnix(path, false)

/**
 * A listening UNIX socket file at `path` owned by soad's user and group, for the control socket: it appears at
 * `path` only once its mode is `mode`. Throws with errno.
 */
export const listenUnixFile = (
  path: string,
  backlog: number,
  mode: number
): { readonly fd: number; readonly dev: number; readonly ino: number } =>
  native().listenUnix(path, false, backlog, mode, null, null)

const openAbstract = (n: Native, name: string, options: ServiceConfig.SocketOptions) =>
  Effect.try({
    try: () => n.listenUnix(name, true, options.backlog, null, null, null).fd,
    catch: (error) =>
      new ListenError({
        address: `@${name}`,
        message: errnoName(error) === "EADDRINUSE"
          ? `@${name}: another process is listening on this abstract socket: stop it or choose another name`
          : `@${name}: ${(error as Error).message}`,
        cause: error
      })
  }).pipe(Effect.tap((fd) => onClose(closeFd(n, fd))))

const openTcp = (n: Native, address: Address.TcpAddress, options: ServiceConfig.SocketOptions) => {
  const text = Address.format(address)
  const attempt = (host: string) =>
    Effect.try({
      try: () => n.listenTcp(host, address.port, options.backlog, false),
      catch: (error) => error
    })
  const listen = address.host === "::"
    // every interface: IPv6 and IPv4 on one socket, as systemd; IPv4 alone where IPv6 is missing
    ? attempt("::").pipe(Effect.catchIf((error) => errnoName(error) === "EAFNOSUPPORT", () => attempt("0.0.0.0")))
    : attempt(address.host)
  return listen.pipe(
    Effect.mapError((error) => {
      const code = errnoName(error)
      const message = code === "EADDRINUSE"
        ? `${text}: port ${address.port} is already in use: stop what uses it or choose another port`
        : code === "EACCES"
        ? `${text}: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE`
        : code === "EADDRNOTAVAIL"
        ? `${text}: ${address.host} is not an address of this machine`
        : `${text}: ${(error as Error).message}`
      return new ListenError({ address: text, message, cause: error })
    }),
    Effect.tap((fd) => onClose(closeFd(n, fd)))
  )
}

const adopt = (n: Native, inherited: Inherited, address: Address.InheritedAddress) =>
  Effect.gen(function*() {
    const text = Address.format(address)
    const found = inherited.fds.find((entry) =>
      address.fd !== undefined ? entry.fd === address.fd : entry.name === address.fdName
    )
    if (inherited.invalid !== undefined) {
      return yield* Effect.fail(
        new ListenError({ address: text, message: `${text}: cannot use an inherited socket: ${inherited.invalid}`, usage: true })
      )
    }
    if (found === undefined) {
      const have = inherited.fds.length === 0
        ? "soad received no sockets (LISTEN_FDS is not set)"
        : `soad received ${inherited.fds.map((e) => `fd:${e.fd} (${e.name})`).join(", ")}`
      return yield* fail(text, `${text}: no such inherited socket; ${have}`)
    }
    const info = yield* Effect.try({
      try: () => n.socketInfo(found.fd),
      catch: (error) => new ListenError({ address: text, message: `${text}: not a socket (${errnoName(error)})`, cause: error })
    })
    if (!info.stream || !info.listening) {
      return yield* fail(text, `${text}: the inherited socket is not a listening stream socket`)
    }
    n.setCloexec(found.fd)
    yield* onClose(closeFd(n, found.fd))
    return found.fd
  })

/** Reloaded socket options could not be given to a socket file; `replaced`: it is not soad's file any more. */
export class SocketFileError extends Data.TaggedError("SocketFileError")<{
  readonly path: string
  readonly replaced: boolean
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Gives the socket file soad created at `path` the mode and owner of `options`, through a descriptor of that very
 * file (never a symlink); if another file is there now, changes nothing and fails with `replaced`.
 */
export const applyOptions = (
  n: Native,
  path: string,
  file: SocketFile,
  options: ServiceConfig.SocketOptions
): Effect.Effect<void, SocketFileError> =>
  Effect.try({
      // Always the mode (a mode taken out of the file goes back to the default); the owner only if given.
      try: () => n.chmodSocket(path, file.dev, file.ino, options.mode ?? Fields.defaultSocketMode, options.uid ?? null, options.gid ?? null),
      catch: (error) => {
        const code = errnoName(error)
        const replaced = code === "ESTALE" || code === "ENOENT" || code === "ELOOP" || code === "ENOTDIR"
        const message = replaced
          ? `${path} is no longer the socket soad created (it was removed or replaced); its mode and owner were left alone`
          : `${path}: cannot set the socket's mode and owner: ${(error as Error).message}`
        return new SocketFileError({ path, replaced, message, cause: error })
      }
    })

const fdOnly = (fd: number): Opened => ({ fd, file: undefined })

/** Opens the listener in the scope and returns soad's fd for it (and the socket file soad created, if any). */
export const open = (
  n: Native,
  inherited: Inherited,
  config: Address.ListenerConfig,
  options: ServiceConfig.SocketOptions
): Effect.Effect<Opened, ListenError, Scope.Scope> => {
  const address = config.address
  switch (address._tag) {
    case "Unix":
      return openUnix(n, address.path, options)
    case "Abstract":
      return Effect.map(openAbstract(n, address.name, options), fdOnly)
    case "Tcp":
      return Effect.map(openTcp(n, address, options), fdOnly)
    case "Inherited":
      return Effect.map(adopt(n, inherited, address), fdOnly)
  }
}

/** How a listener that no longer listened was brought back: `listen()` again, or a new socket at its address. */
export type Revival = "relisten" | "reopened"

/** What a native call that threw says (the call and errno). */
const said = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * A new listening socket at a UNIX path, put at soad's fd number `fd` in place of the one an app shut down: soad's
 * old file is removed (only if it is still soad's: device and inode), the new one made as at the start (bound with
 * mode 0, given its mode and owner through an fd, then listening), and `file` updated to it.
 */
const reopenUnix = (n: Native, fd: number, path: string, file: SocketFile, options: ServiceConfig.SocketOptions) =>
  Effect.gen(function*() {
    yield* removeOwnFile(path, file)
    yield* clearUnixPath(n, path)
    const created = yield* createUnix(n, path, options)
    yield* Effect.try({
      try: () => n.replaceFd(created.fd, fd),
      catch: (error) => {
        n.close(created.fd)
        unlinkOwnFile(path, created)
        return new ListenError({ address: path, message: `${path}: ${said(error)}`, cause: error })
      }
    })
    file.dev = created.dev
    file.ino = created.ino
  })

/**
 * A new listening abstract socket at soad's fd number `fd`: soad's old socket is closed first (the name is bound to
 * it while anyone holds it), which frees the name unless another process still holds the old socket.
 */
const reopenAbstract = (n: Native, fd: number, name: string, options: ServiceConfig.SocketOptions) =>
  Effect.try({
    try: () => {
      n.releaseFd(fd)
      const created = n.listenUnix(name, true, options.backlog, null, null, null).fd
      try {
        n.replaceFd(created, fd)
      } catch (error) {
        n.close(created)
        throw error
      }
    },
    catch: (error) =>
      new ListenError({
        address: `@${name}`,
        message: errnoName(error) === "EADDRINUSE"
          ? `@${name}: another process still holds the old socket (something the app left running?), so the name cannot be bound again`
          : `@${name}: ${said(error)}`,
        cause: error
      })
  })

/**
 * Brings back a listener that no longer listens: an app shares it (its fd 3 is soad's socket) and may shut it down
 * (shutdown(2), which many servers call at a graceful stop to wake threads blocked in accept()); it then refuses
 * every connection and polls readable forever. First `listen()` again, which revives a TCP socket; a UNIX socket
 * stays shut down, and is made anew at its address, with its mode and owner, at the same fd number. An inherited
 * socket cannot be bound again by soad. undefined: it still listens.
 */
export const revive = (
  n: Native,
  fd: number,
  address: Address.Address,
  file: SocketFile | undefined,
  options: ServiceConfig.SocketOptions
): Effect.Effect<Revival | undefined, ListenError> =>
  Effect.gen(function*() {
    const text = Address.format(address)
    const failure = (message: string, cause?: unknown) => new ListenError({ address: text, message: `${text}: ${message}`, cause })
    const alive = yield* Effect.try({ try: () => n.listening(fd), catch: (error) => failure(said(error), error) })
    if (alive) return undefined
    const relistened = yield* Effect.either(Effect.try({ try: () => n.relisten(fd, options.backlog), catch: (error) => error }))
    if (relistened._tag === "Right" && relistened.right) return "relisten"
    if (address._tag === "Unix" && file !== undefined) {
      yield* reopenUnix(n, fd, address.path, file, options)
      return "reopened"
    }
    if (address._tag === "Abstract") {
      yield* reopenAbstract(n, fd, address.name, options)
      return "reopened"
    }
    const why = relistened._tag === "Left"
      ? errnoName(relistened.left) === "EADDRINUSE" && address._tag === "Tcp"
        ? `listen() again failed: port ${address.port} was taken meanwhile`
        : `listen() again failed (${said(relistened.left)})`
      : "listen() again does not revive it"
    return yield* Effect.fail(failure(
      address._tag === "Inherited"
        ? `the inherited socket was shut down (by an app) and ${why}; soad cannot bind an inherited socket again: restart what passed it to soad (its systemd .socket unit)`
        : `the socket was shut down (by an app) and ${why}`,
      relistened._tag === "Left" ? relistened.left : undefined
    ))
  })
