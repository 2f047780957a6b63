/**
 * os/unixServer.ts, the control socket's server, against the real binding: connections accepted in C reach the
 * handler as node:net sockets; the scope's end destroys the open ones and closes the listener; accepting that
 * fails pauses (100 ms, doubling) instead of spinning on a listener that stays readable (under TestClock).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { native } from "../../src/os/native.js"
import * as UnixServer from "../../src/os/unixServer.js"

const connect = (path: string) =>
  Effect.async<Net.Socket, Error>((resume) => {
    const socket = Net.connect(path)
    socket.once("connect", () => resume(Effect.succeed(socket)))
    socket.once("error", (error) => resume(Effect.fail(error)))
  })

const read = (socket: Net.Socket) =>
  Effect.async<string>((resume) => {
    let got = ""
    socket.on("data", (chunk) => (got += chunk))
    socket.once("close", () => resume(Effect.succeed(got)))
  })

describe("UnixServer.serve", () => {
  it.live("hands each accepted connection over as a socket; the scope's end destroys open ones and closes the listener", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "soad-unix-server-"))
      const path = Path.join(dir, "s.sock")
      const listener = native().listenUnix(path, false, 16, 0o600, null, null)
      const scope = yield* Scope.make()
      const held: Array<Net.Socket> = []
      yield* Scope.extend(
        UnixServer.serve(listener.fd, "test", (socket) => {
          held.push(socket)
          socket.once("data", (chunk) => {
            if (String(chunk) === "ping\n") socket.end("pong\n")
          })
        }),
        scope
      )
      // Two clients: one asks and is answered, one stays silent.
      const asking = yield* connect(path)
      const answer = read(asking)
      asking.write("ping\n")
      expect(yield* answer).toBe("pong\n")
      const silent = yield* connect(path)
      const silentEnd = read(silent)
      while (held.length < 2) yield* Effect.sleep("5 millis")
      yield* Scope.close(scope, Exit.void)
      expect(yield* silentEnd).toBe("") // destroyed by the scope's end, not left to hold shutdown
      const after = yield* Effect.either(connect(path))
      expect(after._tag).toBe("Left") // nobody listens any more
      Fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.scoped("accepting that fails pauses 100 ms, doubling, with a warning each time: never a spin", () =>
    Effect.gen(function*() {
      // A pipe with a byte in it: always readable, and accept(2) on it fails (ENOTSOCK).
      const pipe = native().outputPipe()
      Fs.writeSync(pipe.write, "x")
      const warnings: Array<string> = []
      const logger = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ message }) => {
          warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
      )
      yield* UnixServer.serve(pipe.read, "the test socket", () => {}).pipe(Effect.provide(logger))
      const settle = Effect.gen(function*() {
        for (let i = 0; i < 20; i++) yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      })
      yield* settle
      expect(warnings.length).toBe(1)
      expect(warnings[0]).toMatch(/^the test socket: cannot accept a connection \(accept4: .*\); trying again after a pause$/)
      yield* TestClock.adjust("99 millis")
      yield* settle
      expect(warnings.length).toBe(1) // no second look within the pause
      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(warnings.length).toBe(2)
      yield* TestClock.adjust("199 millis")
      yield* settle
      expect(warnings.length).toBe(2) // the pause doubled
      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(warnings.length).toBe(3)
      native().close(pipe.write)
    }))
})
