/**
 * What proxy mode needs of the OS: a relayer that accepts on a service's listeners and relays its connections to
 * the app's own address, the fd limit, a free port for `--upstream auto`, and a way to see the app listen there.
 * The live layer is the native relay (Linux) or Node sockets; tests give a fake, so proxy mode runs under
 * TestClock like hand-off mode.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Net from "node:net"
import * as Connections from "./os/connections.js"
import * as Relay from "./os/relay.js"
import { net } from "./os/lazyNet.js"

/** Where the app listens. */
export type Target = Relay.Target

/** An accepted connection, held or relayed. */
export type Conn = Relay.Conn

/** Accepts on a service's listeners and relays its connections (see os/relay.ts). */
export type Relayer = Relay.Relayer

/** The relay operations proxy mode needs. */
export class RelayService extends Context.Tag("soad/RelayService")<RelayService, {
  /** A relayer for one service; its times are read from the Clock of the calling fiber. */
  readonly relayer: Effect.Effect<Relayer>
  /** RLIMIT_NOFILE (soft) of soad, undefined if unlimited: the default --max-held is drawn from it. */
  readonly fdLimit: Effect.Effect<number | undefined>
  /** A free TCP port on 127.0.0.1 (for `--upstream auto`). */
  readonly freePort: Effect.Effect<number, Error>
  /** Completes once the app accepts on `target` (interruptible: the caller bounds it by the start timeout). */
  readonly awaitListening: (target: Target) => Effect.Effect<void>
}>() {}

/** Looks for the app while it starts: from 10 ms, growing, at most 250 ms apart. */
const upstreamRetry = Schedule.exponential("10 millis", 1.5).pipe(Schedule.union(Schedule.spaced("250 millis")))

/**
 * Is the app listening on `target`? On Linux soad asks the kernel for a listening socket there (sock_diag, else
 * /proc/net), so the app sees no connection of soad's own; elsewhere it connects and closes at once.
 */
const isListening = (target: Target): Effect.Effect<boolean> =>
  Connections.available()
    ? Connections.listening(target)
    : Effect.async<boolean>((resume) => {
      const probe = net().connect(target)
      probe.once("connect", () => {
        probe.destroy()
        resume(Effect.succeed(true))
      })
      probe.once("error", () => resume(Effect.succeed(false)))
      return Effect.sync(() => probe.destroy())
    })

const freePort = Effect.async<number, Error>((resume) => {
  const server = net().createServer()
  server.once("error", (error) => resume(Effect.fail(error)))
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** The live service: the native relay where the binding supports it, Node sockets elsewhere. */
export const make: Effect.Effect<RelayService["Type"]> = Effect.sync(() => ({
  relayer: Effect.map(Effect.clock, Relay.make),
  fdLimit: Effect.sync(Relay.fdLimit),
  freePort,
  awaitListening: (target) => Effect.asVoid(Effect.repeat(isListening(target), { schedule: upstreamRetry, until: (up) => up }))
}))

/** The live layer. */
export const layer: Layer.Layer<RelayService> = Layer.effect(RelayService, make)
