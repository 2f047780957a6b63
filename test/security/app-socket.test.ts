/**
 * What the app gets on fd 3 is what sd_listen_fds promises: a blocking listening socket. soad's own poll (libuv sets
 * O_NONBLOCK) and its counting live on the file description it shares with the app; neither may reach the app or
 * change under it while it runs.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { get, root, sleep, soad, tempDirs } from "../harness.js"

const dir = tempDirs()
const blockingApp = Path.join(root, "test", "fixtures", "blocking_app.py")

describe("fd 3 reaches the app blocking", () => {
  it("a plain blocking accept() loop serves request after request, across idle checks, without EAGAIN", async () => {
    const d = dir()
    const socketPath = Path.join(d, "app.sock")
    const s = soad(["-s", socketPath, "-t", "1.5", "--", "python3", blockingApp])
    await s.waitFor(/listening on/)
    const replies = []
    // The first request starts the app; each later one finds the backlog empty, so accept() must block, not fail.
    // The gaps cross soad's idle deadline checks (at 1.5 s after the latest connection), where it reads its counters.
    for (const gap of [0, 300, 1000, 1200]) {
      await sleep(gap)
      replies.push(await get({ socketPath }))
    }
    expect(replies.map((reply) => reply.nonblock)).toEqual([false, false, false, false])
    expect(new Set(replies.map((reply) => reply.pid)).size).toBe(1) // one app served them all: it never died
    expect(s.count(/exited/)).toBe(0)
    expect(Fs.existsSync(socketPath)).toBe(true)
  })
})
