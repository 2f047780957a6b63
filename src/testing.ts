/**
 * `soad/testing`: the fake layers and the clock helpers soad's own unit tests run on, for testing programs that
 * host services with soad (the Activator, Services) without sockets, processes or time passing. It depends on
 * `effect` alone (no test runner, no native addon): use it with @effect/vitest or any runner.
 *
 * A `World` is the fake OS; `world.layer` gives SocketService, ProcessService (the real one over a fake Driver),
 * RelayService and AppNotify over it, and `SoadContext.defaults` (Registry, Budget, AppLogs). Run the code under test `supervised`, drive the world (`world.connect(fd)`,
 * `app.exit(1)`, `world.onTerm = "ignore"`), and move time with `advance`, which wakes every sleep on the way in
 * order (plain `TestClock.adjust` can jump past a deadline not yet set; see the clock module, whose own clock then
 * stands in for the TestClock).
 *
 * What a fake must do beyond its types, as the live layers do, because the core relies on it (the fakes here do
 * it; a fake of your own must too):
 * - Nothing waits on real time: no setTimeout, no polling. A wait is an `Effect.async` that a change in the fake
 *   resumes, and whose returned finalizer removes its callback (the core interrupts waits: a `wake`, a stop, a
 *   reload). Times (`arrivals`' `latest.at`, the relay's `lastActivity`) are read from the Clock when they happen.
 * - SocketService: `awaitReadable` completes while a connection waits unaccepted (or the listener was shut down),
 *   with undefined once `wakeup` fires; it accepts nothing. `isPending` answers now. `arrivals(...).latest` never
 *   says an arrival earlier than it was (the idle stop is never early), and at most `quietMillis` later.
 *   `awaitAccepting` completes once nothing waits in the backlog or a connection is open. `accept` gives undefined
 *   when nothing waits; closing its scope closes soad's copy.
 * - ProcessService.Driver: `spawn` returns the pid at once or throws an Error with `errno` (as `nativeError`
 *   makes) or `code` (ENOENT); `onExit` is called once, when the app exits, possibly from inside `killGroup` (a
 *   group that is gone is no error). `arm`, if present, starts the app from a pending connection as `spawn` would
 *   and reports it to `onStarted` once; its disarm says whether it was still armed.
 * - RelayService: the relayer calls `onArrive` for each accepted connection and stops accepting while `hold(true)`;
 *   `awaitListening` completes once the app accepts on its upstream address.
 * - AppNotify: `receive` waits for at least one datagram; `sessionOf` says undefined for a process gone.
 *
 * @since 0.1.0
 */

/** The fake OS: listeners and backlogs, apps and signals, relayed connections, notify sockets, and their layer. */
export { type FakeApp, type OnSignal, type Peer, quietMillis, World, type WorldOptions } from "./testing/world.js"

/** Proxy mode's fake relay (a `World` holds one as `relay`). */
export { type FakeConn, RelayWorld } from "./testing/relayWorld.js"

/** Deterministic time: run the code `supervised`, then `settle` (no time passes) or `advance` the test's clock. */
export { advance, settle, supervised } from "./testing/clock.js"

/** soad's structured events as a test reads them, and errors shaped as the native binding throws them. */
export { captureEvents, type LoggedEvent, nativeError } from "./testing/events.js"
