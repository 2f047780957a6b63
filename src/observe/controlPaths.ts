/**
 * Where control sockets are, and how a client finds the running soads: every soad that is not given `--control
 * PATH` makes `INSTANCE.sock` in one directory, `$XDG_RUNTIME_DIR/soad/` (else `/run/soad/`), so the control
 * commands find every running soad by listing the directories, with no flag. Plain Node (no Effect): the control
 * commands' light path uses it.
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

/** What `--name` takes: letters, digits, `_`, `.`, `@`, `-`, starting with a letter or digit, at most 64. */
export const instanceName = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/

/**
 * FNV-1a, 32 bits, as 8 hex digits (the same function as core/lifecycle.ts's shortHash, which names cgroups; a
 * copy, so that the control commands load no Effect): instance names derived from a file stay what they were.
 */
const hash = (text: string): string => {
  let value = 0x811c9dc5
  for (let i = 0; i < text.length; i++) value = Math.imul(value ^ text.charCodeAt(i), 0x01000193) >>> 0
  return value.toString(16).padStart(8, "0")
}

/**
 * The instance name of a soad run with `-c FILE`: the file's name without its extension and a hash of its real
 * absolute path (`apps-1f0c9a2e` for /etc/soad/apps.toml), the same for `soad -c FILE` and `soad status -c FILE`
 * from any directory or through any symlink.
 */
export const instanceOf = (file: string): string => {
  let real = Path.resolve(file)
  try {
    real = Fs.realpathSync(real)
  } catch {
    // not there (yet): its absolute path
  }
  const stem = Path.basename(real, Path.extname(real)).replace(/[^A-Za-z0-9_.@-]/g, "_").replace(/^[^A-Za-z0-9]+/, "")
  return `${stem.slice(0, 40) || "soad"}-${hash(real)}`
}

/** An environment variable's value, if it is set to something. */
const given = (value: string | undefined): string | undefined => value !== undefined && value !== "" ? value : undefined

/**
 * The directories where soads make their control sockets, in the order clients look: `$SOAD_CONTROL_DIR` alone if
 * set; else `$XDG_RUNTIME_DIR/soad` (where a soad with XDG_RUNTIME_DIR makes its own: a user's soad) and
 * `/run/soad` (a system soad's), so root in a login shell, whose XDG_RUNTIME_DIR is /run/user/0, still finds the
 * system soad.
 */
export const directories = (env: NodeJS.ProcessEnv = process.env): ReadonlyArray<string> => {
  const only = given(env.SOAD_CONTROL_DIR)
  if (only !== undefined) return [Path.resolve(only)]
  const own = Path.join(given(env.XDG_RUNTIME_DIR) ?? "/run", "soad")
  return own === "/run/soad" ? [own] : [own, "/run/soad"]
}

/** The control socket a soad named `instance` makes: in the first of the directories, `INSTANCE.sock`. */
export const socketOf = (instance: string, env: NodeJS.ProcessEnv = process.env): string =>
  Path.join(directories(env)[0]!, `${instance}.sock`)

/** A control socket found: the instance's name and the socket's path. */
export interface Found {
  readonly instance: string
  readonly path: string
}

const isSocket = (path: string): boolean => {
  try {
    return Fs.lstatSync(path).isSocket()
  } catch {
    return false
  }
}

/**
 * The control socket of the soad named `instance`: in the first directory that has one, else where that soad
 * would make it (for the error saying none runs).
 */
export const named = (instance: string, env: NodeJS.ProcessEnv = process.env): string => {
  const paths = directories(env).map((dir) => Path.join(dir, `${instance}.sock`))
  return paths.find(isSocket) ?? paths[0]!
}

/**
 * Every control socket file in the directories, by instance name (the file's name less `.sock`), sorted; only
 * sockets whose names an instance may have. A file that is not a socket is not one (and is never touched). Whether
 * a soad still answers on each is for the caller to ask: a socket left by a killed soad is still there.
 */
export const found = (env: NodeJS.ProcessEnv = process.env): ReadonlyArray<Found> => {
  const seen = new Map<string, Found>()
  for (const dir of directories(env)) {
    let entries: ReadonlyArray<Fs.Dirent>
    try {
      entries = Fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      continue // no such directory: no soad made it
    }
    for (const entry of entries) {
      if (!entry.isSocket() || !entry.name.endsWith(".sock")) continue
      const instance = entry.name.slice(0, -".sock".length)
      if (!instanceName.test(instance)) continue
      const path = Path.join(dir, entry.name)
      // The same name in both directories: the first directory's is the one `--name` reaches, the other is named
      // by its path.
      seen.set(seen.has(instance) ? path : instance, { instance: seen.has(instance) ? path : instance, path })
    }
  }
  return [...seen.values()].sort((a, b) => a.instance.localeCompare(b.instance))
}

/** How old a socket nobody listens on must be before a client removes it: older than any soad's start-up. */
export const staleAfterMs = 60_000

/**
 * Removes a control socket no soad listens on any more (its soad was killed): only if it is still a socket, is
 * ours (`uid`), and was made more than `staleAfterMs` ago, so that a soad starting now (its socket bound, not yet
 * listening) never loses its own. Never fails. `now` is the wall clock, which file times are in (and the light
 * path, which runs this, has no Effect Clock).
 */
export const removeStale = (path: string, uid: number | undefined, now: number = Date.now()): boolean => {
  try {
    const stat = Fs.lstatSync(path)
    if (!stat.isSocket() || stat.uid !== uid || now - stat.mtimeMs < staleAfterMs) return false
    Fs.unlinkSync(path)
    return true
  } catch {
    return false
  }
}
