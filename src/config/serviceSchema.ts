/**
 * The schema of one service's settings as a config file gives them (config/serviceInput.ts turns them into a
 * ServiceConfig, for the file and the command line alike). Only a config file is decoded by it: a run from flags
 * never loads it, nor effect/Schema (about 1.5 ms of start-up to build, `npm run bench`).
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as ServiceConfig from "../ServiceConfig.js"
import * as Durations from "./durations.js"
import * as Fields from "./fields.js"

/** A schema whose failure reads "expected WHAT, found VALUE". */
export const expecting = <A, I>(schema: Schema.Schema<A, I>, what: string): Schema.Schema<A, I> =>
  schema.annotations({ message: (issue) => ({ message: `expected ${what}, found ${Fields.show(issue.actual)}`, override: true }) })

/**
 * A key that is also a flag: a string or a number, valid when the parser the flag shares (config/fields.ts)
 * takes it; its refusal reads as that parser words it. `resolve` calls the same parser for the typed value.
 */
export const ParsedBy = <A>(parse: Fields.Parse<A>, what: string) =>
  Schema.Union(Schema.Number, Schema.String).pipe(Schema.filter((value) => Either.isRight(parse(value)))).annotations({
    message: (issue) => {
      const value = issue.actual
      const refused = typeof value === "number" || typeof value === "string" ? parse(value) : undefined
      const refusal = refused !== undefined && Either.isLeft(refused) ? refused.left : { _tag: "Expected" as const, expected: what }
      return { message: Fields.found(value, refusal), override: true }
    }
  })

/** A duration key, by the rule its flag shares. */
export const Seconds = (field: Durations.Field) => ParsedBy(Fields.duration(field), Durations.expected(field))
/** A count key (`backlog`, `max-held`, …). */
export const Count = ParsedBy(Fields.count, Fields.countExpected)
const Strings = expecting(Schema.Array(Schema.String), "a list of strings")
const NameOrId = expecting(Schema.Union(Schema.String, Schema.Number), "a name or a number")
const Flag = expecting(Schema.Boolean, "true or false")
const Text = expecting(Schema.String, "a string")

/** The per-service keys: the long flag names, plus cwd, env, inherit-env, user and group. */
const serviceFields = {
  listen: Schema.optional(Strings),
  socket: Schema.optional(expecting(Schema.Union(Schema.String, Schema.Array(Schema.String)), "a path or a list of paths")),
  command: Schema.optional(expecting(Schema.Array(Schema.String), `the program and its arguments as a list, e.g. ["gunicorn", "app:app"]`)),
  cwd: Schema.optional(Text),
  env: Schema.optional(expecting(Schema.Record({ key: Schema.String, value: Schema.String }), "a table of strings, e.g. { KEY = \"value\" }")),
  "inherit-env": Schema.optional(Flag),
  user: Schema.optional(NameOrId),
  group: Schema.optional(NameOrId),
  "time-until-stop": Schema.optional(Seconds("time-until-stop")),
  "shutdown-signal": Schema.optional(expecting(Schema.Union(Schema.String, Schema.Number), "a signal name or number")),
  "stop-timeout": Schema.optional(Seconds("stop-timeout")),
  "start-timeout": Schema.optional(Seconds("start-timeout")),
  "min-uptime": Schema.optional(Seconds("min-uptime")),
  "max-backoff": Schema.optional(Seconds("max-backoff")),
  "start-limit-burst": Schema.optional(ParsedBy(Fields.countOrZero, Fields.countOrZeroExpected)),
  "start-limit-interval": Schema.optional(Seconds("start-limit-interval")),
  "idle-ignores-open-connections": Schema.optional(Flag),
  ready: Schema.optional(expecting(Schema.Literal(...ServiceConfig.readyModes), `"accept" or "notify"`)),
  backlog: Schema.optional(Count),
  "socket-mode": Schema.optional(expecting(Schema.Union(Schema.String, Schema.Number), Fields.socketModeExpected)),
  "socket-user": Schema.optional(NameOrId),
  "socket-group": Schema.optional(NameOrId),
  upstream: Schema.optional(expecting(Schema.String, `an address such as "127.0.0.1:3000", a socket path, or "auto"`)),
  "max-held": Schema.optional(Count),
  "waiting-page": Schema.optional(Seconds("waiting-page")),
  "waiting-page-file": Schema.optional(Text),
  accept: Schema.optional(Flag),
  "max-connections": Schema.optional(Count),
  "max-connections-per-source": Schema.optional(Count),
  "max-accept-rate": Schema.optional(ParsedBy(Fields.rate, Fields.rateExpected))
}

/** One service's settings (and a config file's [defaults]): every key optional; what is required is checked by `resolve`. */
export const ServiceInput = Schema.Struct(serviceFields)
