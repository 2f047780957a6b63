// The demo app: a small Node HTTP server that takes its listening socket from soad (fd 3, LISTEN_FDS) and
// says who it is. Any Node server does the same with `server.listen({ fd: 3 })`.
import * as Http from "node:http"

if (process.env.LISTEN_PID !== String(process.pid) || process.env.LISTEN_FDS !== "1") {
  console.error("demo app: run me under soad (npm start): I take my socket from fd 3")
  process.exit(1)
}
const startedAt = Date.now()
let requests = 0
const server = Http.createServer((request, response) => {
  requests += 1
  response.setHeader("content-type", "text/plain; charset=utf-8")
  response.end(
    `Hello from the demo app, pid ${process.pid}.\n` +
      `I was started by soad ${((Date.now() - startedAt) / 1000).toFixed(1)} s ago, on the first connection, ` +
      `and have answered ${requests} request${requests === 1 ? "" : "s"}.\n` +
      `Leave me alone for a while and soad stops me; the next request starts me again.\n`
  )
})
server.listen({ fd: 3 })
process.on("SIGTERM", () => server.close(() => process.exit(0)))
