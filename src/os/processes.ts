/**
 * ProcessService's live driver over the native binding: fork/exec with the listeners, each app in a cgroup of its
 * own where soad may create them and guarded by soad-guard (Linux), its output in pipes soad reads; and the app's
 * environment.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as AppLogs from "../observe/appLogs.js"
import * as Signal from "../Signal.js"
import * as Cgroup from "./cgroup.js"
import * as Guard from "./guard.js"
import { helperPath, native, type SpawnOptions } from "./native.js"
import type { Containment, Driver, ExitStatus, Keeping, SpawnRequest } from "./processTypes.js"

/** Names LISTEN_* and NOTIFY_SOCKET: soad's own, never passed on by inheritance. */
const privateVariables = new Set(["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"])

/** Names the peer of an accepted connection (`--accept`): an instance never inherits soad's. */
const peerVariables = new Set(["REMOTE_ADDR", "REMOTE_PORT"])

/** The app's environment: soad's (less its private variables) or none, the extra variables, LISTEN_FDS/NAMES. */
export const environment = (
  base: NodeJS.ProcessEnv,
  request: SpawnRequest
): Array<string> => {
  const env: Record<string, string> = {}
  if (request.inheritEnv) {
    for (const [key, value] of Object.entries(base)) {
      if (value === undefined || privateVariables.has(key)) continue
      if (request.connection !== undefined && peerVariables.has(key)) continue
      env[key] = value
    }
  }
  Object.assign(env, request.env)
  env.LISTEN_FDS = String(request.fds.length)
  env.LISTEN_FDNAMES = request.fdNames.join(":")
  delete env.LISTEN_PID // set by the child itself to its own pid
  return Object.entries(env).map(([key, value]) => `${key}=${value}`)
}

/** What the platform guarantees with these cgroups and this guard, in one sentence for the log. */
const describe = (keeping: Keeping): Pick<Containment, "guarantee" | "message" | "level" | "fields"> => {
  const guard = keeping.guard
  const fields = { cgroup: keeping.cgroups?._tag === "Root" ? keeping.cgroups.dir : undefined, guard_pid: guard?.pid }
  if (process.platform !== "linux") {
    return {
      guarantee: "none",
      level: "warn",
      fields,
      message: "containment: none (not Linux: no cgroups, no parent-death signal): what an app starts in the background " +
        "may outlive its stop, and the app outlives soad if soad is killed"
    }
  }
  const missing = "soad-guard is missing (rebuild soad: npm run build)"
  if (keeping.cgroups?._tag === "Root") {
    return {
      guarantee: "cgroup",
      level: guard === undefined ? "warn" : "info",
      fields,
      message: `containment: cgroup: each app runs in its own cgroup under ${keeping.cgroups.dir}: a stop kills everything it started` +
        (guard === undefined
          ? `; ${missing}: if soad is killed, that keeps running until soad starts again`
          : `, and soad-guard (pid ${guard.pid}) does the same if soad is killed`)
    }
  }
  const reason = keeping.cgroups?._tag === "Unusable" ? keeping.cgroups.reason : "no cgroups"
  return guard === undefined
    ? {
      guarantee: "process group",
      level: "warn",
      fields,
      message: `containment: process group only (${reason}; ${missing}): daemons that leave the app's process group ` +
        "survive its stop, and if soad is killed only the app itself dies"
    }
    : {
      guarantee: "process group + guard",
      level: "warn",
      fields,
      message: `containment: process group + guard (${reason}): a stop, or soad-guard (pid ${guard.pid}) if soad is ` +
        "killed, kills the app's process group; daemons that leave it (setsid) survive"
    }
}

/** The pipes of an app's stdout (unless it is a connection) and stderr, which soad reads. */
interface Pipes {
  readonly stdout: { readonly read: number; readonly write: number } | undefined
  readonly stderr: { readonly read: number; readonly write: number }
}

/**
 * The driver over the native binding: fork/exec with LISTEN_PID, a new session, the parent-death signal; each app
 * in a cgroup of its own where `keeping.cgroups` is usable, and guarded by `keeping.guard` if there is one.
 */
const nativeDriver = (keeping: Keeping = {}): Driver => {
  const n = native()
  const root = keeping.cgroups?._tag === "Root" ? keeping.cgroups.dir : undefined
  const guard = keeping.guard
  const cgroups = new Map<number, string>() // the running apps' cgroups, by pid
  const armedDirs = new Set<string>() // cgroups made for armed starts that have not fired
  let anonymous = 0
  // soad's own environment, read once: reading process.env goes through the C environment entry by entry.
  let inherited: NodeJS.ProcessEnv | undefined
  // Each service's environment, built once for the start and again only when what it is made of changes
  // (a reload): a cold start spends no time on it. soad's own environment is read at the first start, so later
  // changes to process.env reach no app.
  const environments = new Map<string, { readonly key: string; readonly env: Array<string> }>()
  const environmentOf = (request: SpawnRequest): Array<string> => {
    const key = JSON.stringify([request.inheritEnv, request.fds.length, request.fdNames, request.env, request.connection !== undefined])
    const name = request.unit ?? request.command.join(" ")
    const cached = environments.get(name)
    if (cached !== undefined && cached.key === key) return cached.env
    inherited ??= { ...process.env }
    const env = environment(inherited, request)
    environments.set(name, { key, env })
    return env
  }

  /** spawn's options for this request: its cgroup, and the write ends of its output pipes. */
  const optionsOf = (request: SpawnRequest, cgroupFd: number | undefined, pipes: Pipes | undefined): SpawnOptions => ({
    cwd: request.cwd,
    uid: request.uid,
    gid: request.gid,
    groups: request.groups,
    listenPid: true,
    pdeathsig: true,
    cgroupFd,
    stdinFd: request.connection,
    stdoutFd: request.connection ?? pipes?.stdout?.write,
    stderrFd: pipes?.stderr.write
  })

  const exitCallback = (onExit: (status: ExitStatus) => void) => (code: number | null, signal: number | null) =>
    onExit({ code, signal: signal === null ? null : Signal.fromNumber(signal)?.name ?? null })

  /**
   * Once an app was started (pid) or not (undefined): the app has its copies of the pipes' write ends (or no app
   * exists), so soad keeps only the read ends, and only if an app writes to them; they go to the logs.
   */
  const handOver = (pipes: Pipes | undefined, pid: number | undefined, output: AppLogs.Output | undefined) => {
    if (pipes === undefined) return
    for (const pipe of [pipes.stdout, pipes.stderr]) {
      if (pipe === undefined) continue
      n.close(pipe.write)
      if (pid === undefined) n.close(pipe.read)
    }
    if (pid === undefined || output === undefined) return
    if (pipes.stdout !== undefined) output.capture(pid, "stdout", pipes.stdout.read)
    output.capture(pid, "stderr", pipes.stderr.read)
  }

  const exec = (
    request: SpawnRequest,
    onExit: (status: ExitStatus) => void,
    cgroupFd: number | undefined,
    output: AppLogs.Output | undefined
  ) => {
    // An accepted connection is the app's stdout: only stderr goes to soad's logs.
    const pipes = output === undefined ? undefined : outputPipes(request.connection === undefined)
    let pid: number | undefined
    try {
      pid = n.spawn(
        request.command[0],
        request.command,
        environmentOf(request),
        request.fds,
        optionsOf(request, cgroupFd, pipes),
        exitCallback(onExit)
      )
    } finally {
      handOver(pipes, pid, output)
    }
    return pid
  }

  /** A pipe for each of the app's output streams (stderr only, if not `stdout`); none left open if one cannot be made. */
  const outputPipes = (stdout: boolean): Pipes => {
    const out = stdout ? n.outputPipe() : undefined
    try {
      return { stdout: out, stderr: n.outputPipe() }
    } catch (error) {
      if (out !== undefined) {
        n.close(out.read)
        n.close(out.write)
      }
      throw error
    }
  }

  /**
   * A new cgroup for the unit's app, guarded before the app exists: from its first instruction on, a kill -9 of
   * soad takes it along.
   */
  const newCgroup = (root: string, unit: string | undefined): string => {
    const dir = cgroupFor(root, unit)
    Cgroup.create(dir)
    guard?.add(dir)
    return dir
  }

  /** Removes a cgroup whose app never started (anything in it killed first), and stops guarding it. */
  const dropCgroup = (dir: string) => {
    Cgroup.kill(dir)
    if (Cgroup.remove(dir)) guard?.remove(dir)
  }

  /** A cgroup directory for the unit that no running app uses. */
  const cgroupFor = (root: string, unit: string | undefined): string => {
    const name = unit ?? `app-${++anonymous}`
    const taken = new Set([...cgroups.values(), ...armedDirs])
    for (let i = 0;; i++) {
      const dir = Path.join(root, Cgroup.name(name, process.pid, i))
      if (!taken.has(dir)) return dir
    }
  }

  const spawn: Driver["spawn"] = (request, onExit, output) => {
    if (root === undefined) {
      const pid = exec(request, onExit, undefined, output)
      guard?.add(String(pid))
      return pid
    }
    const dir = newCgroup(root, request.unit)
    let fd: number | undefined
    try {
      fd = Cgroup.openDir(dir)
      const pid = exec(request, onExit, fd, output)
      cgroups.set(pid, dir)
      return pid
    } catch (error) {
      dropCgroup(dir)
      throw error
    } finally {
      if (fd !== undefined) Fs.closeSync(fd)
    }
  }

  /**
   * What spawn does before the fork, done now (the cgroup, guarded; the environment), and the listeners armed with
   * it; the cgroup directory stays reserved while armed, and a disarm removes it. The fds (the cgroup's, the
   * output pipes) are opened only at the start, so an armed service holds none.
   */
  const arm: Driver["arm"] = (request, onExit, onStarted, output) => {
    const dir = root === undefined ? undefined : newCgroup(root, request.unit)
    if (dir !== undefined) armedDirs.add(dir)
    /** Undoes the preparation: nothing was started. */
    const undo = () => {
      if (dir === undefined) return
      armedDirs.delete(dir)
      dropCgroup(dir)
    }
    let id: number
    try {
      // An accepted connection is the app's stdout: only stderr goes to soad's logs.
      const outputs = output === undefined ? 0 : request.connection === undefined ? 2 : 1
      id = n.armSpawn(
        request.fds,
        request.command[0],
        request.command,
        environmentOf(request),
        request.fds,
        optionsOf(request, undefined, undefined),
        exitCallback(onExit),
        (index, pid, error, spawnMs, wokeAtNs, stdoutRead, stderrRead) => {
          if (pid === null) {
            undo()
            return onStarted(error === null ? { _tag: "NotListening", index } : { _tag: "Failed", error })
          }
          if (dir !== undefined) {
            armedDirs.delete(dir)
            cgroups.set(pid, dir)
          } else guard?.add(String(pid))
          if (output !== undefined) {
            if (stdoutRead >= 0) output.capture(pid, "stdout", stdoutRead)
            if (stderrRead >= 0) output.capture(pid, "stderr", stderrRead)
          }
          onStarted({ _tag: "Started", index, pid, spawnMs, wokeAtNs })
        },
        { cgroup: dir, outputs }
      )
    } catch (error) {
      undo()
      throw error
    }
    return () => {
      if (!n.disarmSpawn(id)) return false
      undo()
      return true
    }
  }

  /**
   * Accept mode's lane: the instance's start prepared once (its environment, its command found); each start given
   * has a cgroup made for it (guarded) before it is given, and its stderr is a pipe soad reads when there is an
   * output. The cgroup of a start not used is removed when it is taken back.
   */
  const armAccept: Driver["armAccept"] = (listeners, request, events, output) => {
    let given: string | undefined // the cgroup directory of the start given
    const undo = () => {
      const dir = given
      given = undefined
      if (dir === undefined) return
      armedDirs.delete(dir)
      dropCgroup(dir)
    }
    const id = n.acceptArm(
      listeners,
      request.command[0],
      request.command,
      environmentOf(request),
      { cwd: request.cwd, uid: request.uid, gid: request.gid, groups: request.groups, listenPid: true, pdeathsig: true },
      (code, signal, pid) => events.exit(pid, { code, signal: signal === null ? null : Signal.fromNumber(signal)?.name ?? null }),
      (index, ip, port, uid) => events.admit(index, ip === null ? { uid: uid < 0 ? undefined : uid } : { remote: { ip, port } }),
      (_index, pid, error, connection, stderrRead) => {
        if (pid === null) {
          undo()
          return events.failed(error, connection)
        }
        const dir = given
        given = undefined
        if (dir !== undefined) {
          armedDirs.delete(dir)
          cgroups.set(pid, dir)
        } else guard?.add(String(pid))
        if (output !== undefined && stderrRead >= 0) output.capture(pid, "stderr", stderrRead)
        events.started(pid)
      },
      (index, error) => {
        undo()
        events.acceptFailed(index, error)
      },
      { stderr: output !== undefined }
    )
    return {
      give: () => {
        const dir = root === undefined ? undefined : newCgroup(root, request.unit)
        if (dir !== undefined) armedDirs.add(dir)
        given = dir
        try {
          n.acceptOpen(id, dir ?? null)
        } catch (error) {
          undo()
          throw error
        }
      },
      takeBack: () => {
        if (!n.acceptClose(id)) return false
        undo()
        return true
      },
      disarm: () => {
        n.acceptDisarm(id)
        undo()
      },
      close: (connection) => n.close(connection)
    }
  }

  return {
    spawn,
    ...(process.platform === "linux" ? { arm, armAccept } : {}),
    killGroup: (pgid, signal) => {
      try {
        process.kill(-pgid, signal.number)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
      }
    },
    containment: {
      ...describe(keeping),
      cgroupOf: (pid) => cgroups.get(pid),
      kill: Cgroup.kill,
      remove: Cgroup.remove,
      forget: (pid) => {
        const dir = cgroups.get(pid)
        cgroups.delete(pid)
        guard?.remove(dir ?? String(pid))
      },
      leftovers: (unit) => root === undefined ? [] : Cgroup.leftovers(root, unit, process.pid)
    }
  }
}

/**
 * The live driver: finds where soad may create cgroups and starts soad-guard (Linux), for as long as the scope
 * lives; the guard, if one runs, for the service to supervise.
 */
export const live: Effect.Effect<{ readonly driver: Driver; readonly guard: Guard.Guard | undefined }, never, Scope.Scope> =
  Effect.gen(function*() {
    const linux = process.platform === "linux"
    const cgroups = linux ? Cgroup.findRoot() : undefined
    const path = linux ? helperPath("soad-guard") : undefined
    const guard = path === undefined ? undefined : yield* Guard.start(path)
    return { driver: nativeDriver({ cgroups, guard }), guard }
  })
