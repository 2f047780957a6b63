/**
 * What soad and `soad status|wake|sleep|restart|reload|logs` say to each other over the control socket: one JSON
 * request line per connection, one JSON answer line (and, for `logs`, one LogMessage line per line of output).
 * Types only: the control commands' light path (cli/light.ts) and the server (control.ts) share them without
 * either loading the other.
 *
 * @internal
 */
import type { Stream } from "./appLogs.js"

/** A request. `wake`, `sleep` and `restart` name a service; `reload` asks a `-c FILE` soad to read its file again. */
export type Request =
  | { readonly command: "status" }
  | { readonly command: "wake"; readonly service: string }
  | { readonly command: "sleep"; readonly service: string }
  | { readonly command: "restart"; readonly service: string }
  | { readonly command: "reload" }

/**
 * `soad logs`: the latest `lines` lines of a service's output (of every service, in time order, without
 * `service`), then (with `follow`) each new one until the client closes. The answer is a Response line, then one
 * LogMessage per line.
 */
export interface LogsRequest {
  readonly command: "logs"
  readonly service?: string | undefined
  readonly lines: number
  readonly follow: boolean
}

/** After a `logs` answer's first line: a line of the app's output, or how many lines a slow reader missed. */
export type LogMessage =
  | {
    readonly stream: Stream
    readonly pid: number
    readonly time: number
    readonly line: string
    /** The next message of this service continues this line (it was cut at 16 KiB). */
    readonly continued?: true
    /** Whose line it is, when every service's lines were asked for. */
    readonly service?: string
  }
  | { readonly dropped: number }

/**
 * A UNIX socket file of a service as it is now (lstat of its path at the request): its mode and owner, or why
 * there is none to show (`gone`; `replaced`: the file there is not the socket soad made).
 */
export type SocketFileReport =
  | {
    readonly path: string
    /** Permission bits in octal, "0660". */
    readonly mode: string
    readonly uid: number
    readonly gid: number
    /** The owner's and group's names, where /etc/passwd and /etc/group have them. */
    readonly user?: string
    readonly group?: string
  }
  | { readonly path: string; readonly problem: "gone" | "replaced" }

/** A service in a status answer. */
export interface ServiceReport {
  readonly name: string
  readonly state: string
  readonly pid: number | null
  readonly uptime_s: number | null
  readonly idle_s: number | null
  readonly memory_bytes: number | null
  readonly activations: number
  readonly idle_stops: number
  readonly crashes: number
  readonly failed_starts: number
  readonly listeners: ReadonlyArray<string>
  /** Its UNIX socket files (its listeners on a path, made by soad or inherited), as they are now. */
  readonly sockets?: ReadonlyArray<SocketFileReport>
  /** The app's peak resident memory while it ran (this run's, else the latest run's); null before any sample. */
  readonly peak_memory_bytes: number | null
  /** RAM-time saved while the app was stopped: peak memory × time stopped. */
  readonly saved_byte_seconds: number
  /** Why the app last failed (a failed start, a crash), and how long ago. */
  readonly last_error: string | null
  readonly last_error_age_s: number | null
  /** `--ready notify`: the app's latest STATUS= text in this run. */
  readonly app_status?: string
  /** `--accept`: the instances running now, one per connection (`activations`: connections served). */
  readonly instances?: number
  readonly open_connections?: number
  readonly relayed_bytes?: { readonly in: number; readonly out: number }
  /** Proxy mode with --waiting-page: waiting pages served. */
  readonly waiting_pages?: number
}

/**
 * An answer. `incomplete`: a reload applied the file but left a service as it was or unstarted (the message says
 * which). `details`: the lines behind a refusal (a refused config file's errors).
 */
export type Response =
  | {
    readonly ok: true
    readonly services?: ReadonlyArray<ServiceReport>
    readonly message?: string
    readonly incomplete?: true
  }
  | { readonly ok: false; readonly error: string; readonly details?: ReadonlyArray<string> }

/** What a reload did, for `soad reload`: its summary, whether all of it applied, a refused file's errors. */
export interface ReloadOutcome {
  /** The file was read and every service is as it says. */
  readonly applied: boolean
  /** The `reloaded` event's message, or why the file was refused. */
  readonly summary: string
  /** The refused file's errors (none when it was read). */
  readonly errors: ReadonlyArray<string>
}
