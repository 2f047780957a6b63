/**
 * The typed configuration of a service: what soad listens on, what it runs, and when it stops it.
 * The command line and the config file produce it (config/serviceInput.ts), a library with `make`; the Activator
 * consumes it and never sees raw strings.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Utils from "effect/Utils"
import * as Address from "./Address.js"
import * as FieldParsers from "./config/fields.js"
import * as Ids from "./config/ids.js"
import * as Users from "./os/users.js"
import type { RunAs } from "./os/users.js"
import * as Signal from "./Signal.js"

/** The mode of a UNIX socket file soad creates when none is given: 0666, whatever soad's umask (see config/fields.ts). */
export const defaultSocketMode = FieldParsers.defaultSocketMode

/** How the listeners are created. */
export interface SocketOptions {
  /** listen(2) backlog for every listener. */
  readonly backlog: number
  /** Mode of a UNIX socket file; undefined: `defaultSocketMode`, whatever soad's umask. */
  readonly mode: number | undefined
  /** Owner and group of a UNIX socket file; undefined: soad's own. */
  readonly uid: number | undefined
  readonly gid: number | undefined
}

/** Where a proxied app listens by itself: an address, or `auto` (a free 127.0.0.1 port given to it as PORT). */
export type Upstream =
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "Unix"; readonly path: string }
  | { readonly _tag: "Auto" }

export type { RunAs } from "./os/users.js"

/**
 * Proxy mode, HTTP/1.x: a browser navigation that has waited `after` for a starting app gets a page that brings it
 * to the app once it is up (modes/waitingPage.ts); `file`: a page of one's own, read when the config is.
 */
export interface WaitingPage {
  readonly after: Duration.Duration
  readonly file: { readonly path: string; readonly text: string } | undefined
}

/**
 * `--max-accept-rate N/DURATION`: a token bucket that holds `count` tokens and gains `count` per `per` (one every
 * per/count); an instance takes one, and without one soad accepts nothing until the next is due.
 */
export interface Rate {
  readonly count: number
  readonly per: Duration.Duration
}

/** When a started app counts as ready: see ServiceConfig.ready. */
export type Ready = "accept" | "notify"

/** The values `--ready` takes. */
export const readyModes: ReadonlyArray<Ready> = ["accept", "notify"]

/** The app gets the listening sockets (fds 3…) and accepts itself, as systemd's socket activation: the default mode. */
export interface HandOff {
  readonly _tag: "HandOff"
}

/** Proxy mode (`--upstream`): soad accepts and relays each connection to the app, which listens by itself. */
export interface Proxy {
  readonly _tag: "Proxy"
  /** Where the app listens (`--upstream`). */
  readonly upstream: Upstream
  /**
   * At most this many connections are held while the app starts (`--max-held`); more wait in the kernel's
   * backlog. undefined: from RLIMIT_NOFILE (see os/relay.ts defaultMaxHeld).
   */
  readonly maxHeld: number | undefined
  /** The waiting page (`--waiting-page`, `--waiting-page-file`); undefined: none, requests just wait. */
  readonly waitingPage: WaitingPage | undefined
}

/**
 * `--accept` (inetd, systemd Accept=yes): soad accepts each connection and runs the command for it alone, with
 * the connection as its fds 0, 1 and 3; no idle timeout (each instance ends with its connection).
 */
export interface Accept {
  readonly _tag: "Accept"
  /** At most this many instances run at once; more connections wait in the backlog (`--max-connections`). */
  readonly maxConnections: number
  /**
   * At most this many instances at once for one source, a client's IP address or a UNIX peer's uid
   * (`--max-connections-per-source`); a connection beyond it is closed at once. At most `maxConnections`;
   * undefined: the default, by the kind of source (`perSourceLimit`).
   */
  readonly maxConnectionsPerSource: number | undefined
  /** The rate instances may start at (`--max-accept-rate`); beyond it connections wait in the backlog. */
  readonly maxAcceptRate: Rate
}

/**
 * A service's mode, as its config chooses it: each carries the settings that mean something in it, and only those
 * (modes/index.ts serves each; what a mode does in the service shell is core/service.ts ModeHooks).
 */
export type Mode = HandOff | Proxy | Accept

/** The default mode: the app gets the sockets. */
export const handOff: HandOff = { _tag: "HandOff" }

/** One app soad activates. */
export interface ServiceConfig {
  /** Shown in logs; the command's base name when not given. */
  readonly name: string
  readonly listeners: ReadonlyArray<Address.ListenerConfig>
  readonly socket: SocketOptions
  /** The app's program and arguments, run without a shell. */
  readonly command: readonly [string, ...Array<string>]
  /** Extra environment for the app. */
  readonly env: Readonly<Record<string, string>>
  /** Start from soad's own environment (true) or from `env` alone. */
  readonly inheritEnv: boolean
  readonly cwd: string | undefined
  /** How connections reach the app: the sockets handed to it, relayed to its own address, or a process per connection. */
  readonly mode: Mode
  /** Run the app as this user; undefined: as soad. */
  readonly user: RunAs | undefined
  /** Idle time before the app is stopped (`-t`). */
  readonly idleTimeout: Duration.Duration
  /** The signal that asks the app to stop (`-S`). */
  readonly shutdownSignal: Signal.Signal
  /** How long the app may take to exit before SIGKILL (`--stop-timeout`). */
  readonly stopTimeout: Duration.Duration
  /** An app that has not accepted the pending connection by then is stopped: a failed start (`--start-timeout`). */
  readonly startTimeout: Duration.Duration
  /**
   * When a started app counts as ready (`--ready`): "accept" once it accepts (proxy: once its port listens);
   * "notify" once it sends READY=1 on the NOTIFY_SOCKET soad gives it for the run (proxy: and its port listens).
   */
  readonly ready: Ready
  /** Idle = no arrivals only, even with accepted connections still open (`--idle-ignores-open-connections`). */
  readonly idleIgnoresOpenConnections: boolean
  /** A run shorter than this counts as a failure for the backoff (`--min-uptime`). */
  readonly minUptime: Duration.Duration
  /** The first backoff delay after a failure; it doubles up to `maxBackoff`. */
  readonly initialBackoff: Duration.Duration
  readonly maxBackoff: Duration.Duration
  /**
   * The start limit (`--start-limit-burst`, `--start-limit-interval`), as systemd's StartLimitBurst=: this many
   * failed starts within the interval and the service is failed (what waits is refused) until `soad wake`,
   * `restart` or a reload; 0: retry for ever.
   */
  readonly startLimitBurst: number
  readonly startLimitInterval: Duration.Duration
}

/** The defaults, as the original soad where it has them. */
export const defaults = {
  idleTimeout: Duration.seconds(60),
  shutdownSignal: Signal.SIGTERM,
  stopTimeout: Duration.seconds(30),
  startTimeout: Duration.seconds(60),
  minUptime: Duration.seconds(5),
  initialBackoff: Duration.millis(500),
  maxBackoff: Duration.seconds(60),
  /** systemd's defaults (DefaultStartLimitBurst=5, DefaultStartLimitIntervalSec=10s). */
  startLimitBurst: 5,
  startLimitInterval: Duration.seconds(10),
  backlog: 1024,
  ready: "accept" as Ready,
  maxConnections: 64,
  /** systemd's defaults for Accept=yes (TriggerLimitBurst=200, TriggerLimitIntervalSec=2s); soad waits, never fails. */
  maxAcceptRate: { count: 200, per: Duration.seconds(2) } as Rate
} as const

/**
 * How many instances one source may run at once: `maxConnectionsPerSource` if set; else, for a client's IP
 * address, half of `maxConnections` rounded up (one remote client can hold at most half the instances, so the others
 * always have the other half), and for a UNIX peer `maxConnections` (a local socket's clients are most often one
 * user, soad's own app: a limit per uid would only refuse them).
 */
export const perSourceLimit = (
  config: Pick<Accept, "maxConnections" | "maxConnectionsPerSource">,
  kind: "ip" | "unix"
): number => config.maxConnectionsPerSource ?? (kind === "ip" ? Math.ceil(config.maxConnections / 2) : config.maxConnections)

/** The per-source limits in words: "at most 2 per source", or the defaults by kind of source. */
export const perSourceText = (config: Pick<Accept, "maxConnections" | "maxConnectionsPerSource">): string =>
  config.maxConnectionsPerSource !== undefined
    ? `at most ${config.maxConnectionsPerSource} per source`
    : `at most ${perSourceLimit(config, "ip")} per client address and ` +
      `${perSourceLimit(config, "unix")} per UNIX peer's uid`

type DurationField =
  | "idleTimeout"
  | "stopTimeout"
  | "startTimeout"
  | "minUptime"
  | "initialBackoff"
  | "maxBackoff"
  | "startLimitInterval"

/**
 * The mode as `make` takes it, flat as the flags give it: `upstream` (with `maxHeld`, `waitingPage`) for proxy
 * mode, `accept: true` (with `maxConnections`, `maxConnectionsPerSource`, `maxAcceptRate`) for a process per
 * connection, neither for hand-off. Or `mode` itself, built: then none of these.
 */
export interface ModeFields {
  readonly mode?: Mode | undefined
  readonly upstream?: Upstream | undefined
  readonly maxHeld?: number | undefined
  readonly waitingPage?: WaitingPage | undefined
  readonly accept?: boolean | undefined
  readonly maxConnections?: number | undefined
  readonly maxConnectionsPerSource?: number | undefined
  readonly maxAcceptRate?: Rate | undefined
}

/**
 * What `make` takes: the listeners (as `-l` takes them: `"/run/app.sock"`, `"http=127.0.0.1:8080"`, `"fd:3"`, or
 * parsed) and the command; durations as any DurationInput (`"5 minutes"`, millis); `user` as a name, a uid or
 * resolved ids; the mode as ModeFields.
 */
export type Fields =
  & Pick<ServiceConfig, "command">
  & { readonly listeners: ReadonlyArray<Address.ListenerConfig | string> }
  & Partial<Omit<ServiceConfig, "listeners" | "command" | "user" | "mode" | DurationField>>
  & ModeFields
  & { readonly user?: RunAs | string | number | undefined }
  & { readonly [K in DurationField]?: Duration.DurationInput }

/** `make` was given a listener, an environment or a user it cannot use; `message` says which and why. */
export class ServiceConfigError extends Error {
  override readonly name = "ServiceConfigError"
}

const listenerOf = (listener: Address.ListenerConfig | string): Address.ListenerConfig => {
  if (typeof listener !== "string") return listener
  const parsed = Address.parseListener(listener)
  if (Either.isLeft(parsed)) throw new ServiceConfigError(`listener '${listener}': ${parsed.left}`)
  return parsed.right
}

/** The listeners, if no two of them overlap (Address.overlaps): such a service could never bind them all. */
const distinct = (listeners: ReadonlyArray<Address.ListenerConfig>): ReadonlyArray<Address.ListenerConfig> => {
  listeners.forEach((listener, i) => {
    const other = listeners.slice(0, i).find((earlier) => Address.overlaps(earlier.address, listener.address))
    if (other !== undefined) {
      throw new ServiceConfigError(`listener '${Address.format(listener.address)}' overlaps '${Address.format(other.address)}': a service listens on each address once`)
    }
  })
  return listeners
}

/** The app's extra environment, if every entry can reach it (config/fields.ts envProblem). */
const envOf = (env: Readonly<Record<string, string>>): Readonly<Record<string, string>> => {
  for (const [name, value] of Object.entries(env)) {
    const problem = FieldParsers.envProblem(name, value)
    if (problem !== undefined) throw new ServiceConfigError(`env: ${problem}`)
  }
  return env
}

const userOf = (user: RunAs | string | number | undefined): RunAs | undefined => {
  if (user === undefined || typeof user === "object") return user
  const ref = Ids.parse(user)
  if (Either.isLeft(ref)) throw new ServiceConfigError(`user '${user}': ${ref.left}`)
  const found = Users.resolver.user(ref.right)
  if (found === undefined) throw new ServiceConfigError(`user '${user}': no such user`)
  return found
}

/** ModeFields' names, as make's refusals word them: `maxHeld`, `accept: true`. */
const fieldWords: FieldParsers.ModeWords = {
  key: (key) => key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase()),
  set: (key: string, value: string | boolean) => `${key}: ${typeof value === "string" ? JSON.stringify(value) : value}`
}

/** The flat ModeFields `make` takes, by their names in ModeFields. */
const flatModeKeys = ["upstream", ...FieldParsers.proxyKeys, "accept", ...FieldParsers.acceptKeys] as const

/**
 * The mode ModeFields give (a built `mode`, or the flat settings), if its settings go together: config/fields.ts
 * modeRules, the rules the flags and the file go through. A per-source limit above `maxConnections` is lowered to
 * it (it could never be reached).
 */
const modeOf = (fields: ModeFields, ready: Ready): Mode => {
  const flat = flatModeKeys.filter((key) => fields[fieldWords.key(key) as keyof ModeFields] !== undefined)
  if (fields.mode !== undefined && flat.length > 0) {
    throw new ServiceConfigError(`mode cannot be combined with ${flat.map(fieldWords.key).join(", ")}: give the mode one way`)
  }
  const given = fields.mode === undefined
    ? { accept: fields.accept === true, upstream: fields.upstream !== undefined, has: (key: FieldParsers.ModeKey) => flat.includes(key) }
    : { accept: fields.mode._tag === "Accept", upstream: fields.mode._tag === "Proxy", has: () => false }
  const broken = FieldParsers.modeRules({ ...given, notify: ready === "notify" }, fieldWords)
  if (broken.length > 0) throw new ServiceConfigError(broken.map(({ message }) => message).join("; "))
  const mode = fields.mode ?? flatMode(fields)
  if (mode._tag !== "Accept" || mode.maxConnectionsPerSource === undefined) return mode
  return { ...mode, maxConnectionsPerSource: Math.min(mode.maxConnections, mode.maxConnectionsPerSource) }
}

/** The mode flat ModeFields give, once they go together. */
const flatMode = (fields: ModeFields): Mode => {
  if (fields.upstream !== undefined) {
    return { _tag: "Proxy", upstream: fields.upstream, maxHeld: fields.maxHeld, waitingPage: fields.waitingPage }
  }
  if (fields.accept !== true) return handOff
  return {
    _tag: "Accept",
    maxConnections: fields.maxConnections ?? defaults.maxConnections,
    maxConnectionsPerSource: fields.maxConnectionsPerSource,
    maxAcceptRate: fields.maxAcceptRate ?? defaults.maxAcceptRate
  }
}

/**
 * Builds a ServiceConfig from the required fields, the rest from the defaults. Throws ServiceConfigError for a
 * listener string or a user name it cannot use (a user name is looked up with getpwnam, through the addon), and
 * for settings of two modes, or of a mode not chosen (`maxHeld` without `upstream`), as the flags and the file
 * refuse them. A `maxConnectionsPerSource` above `maxConnections` is lowered to it (it could never be reached).
 */
export const make = (fields: Fields): ServiceConfig => {
  const ready = fields.ready ?? defaults.ready
  return {
    name: fields.name ?? baseName(fields.command[0]),
    listeners: distinct(fields.listeners.map(listenerOf)),
    socket: fields.socket ?? { backlog: defaults.backlog, mode: undefined, uid: undefined, gid: undefined },
    command: fields.command,
    env: envOf(fields.env ?? {}),
    inheritEnv: fields.inheritEnv ?? true,
    cwd: fields.cwd,
    user: userOf(fields.user),
    mode: modeOf(fields, ready),
    idleTimeout: Duration.decode(fields.idleTimeout ?? defaults.idleTimeout),
    shutdownSignal: fields.shutdownSignal ?? defaults.shutdownSignal,
    stopTimeout: Duration.decode(fields.stopTimeout ?? defaults.stopTimeout),
    startTimeout: Duration.decode(fields.startTimeout ?? defaults.startTimeout),
    ready,
    idleIgnoresOpenConnections: fields.idleIgnoresOpenConnections ?? false,
    minUptime: Duration.decode(fields.minUptime ?? defaults.minUptime),
    initialBackoff: Duration.decode(fields.initialBackoff ?? defaults.initialBackoff),
    maxBackoff: Duration.decode(fields.maxBackoff ?? defaults.maxBackoff),
    startLimitBurst: fields.startLimitBurst ?? defaults.startLimitBurst,
    startLimitInterval: Duration.decode(fields.startLimitInterval ?? defaults.startLimitInterval)
  }
}

const baseName = (program: string): string => program.slice(program.lastIndexOf("/") + 1) || program

/**
 * Two values of a config are the same: compared by structure (plain objects by their keys in any order, lists in
 * order, durations by length), so `env = { A = "1", B = "2" }` and `{ B = "2", A = "1" }` are one setting.
 */
export const same = (a: unknown, b: unknown): boolean => Utils.structuralRegion(() => Equal.equals(a, b))

/** Two configs run the same way. */
export const equivalent = (a: ServiceConfig, b: ServiceConfig): boolean => same(a, b)
