// The benchmark's app: the smallest Node HTTP server. It takes its socket from soad or systemd-socket-activate
// (LISTEN_FDS, fd 3) or, given --listen PATH|PORT, binds it itself (the app started directly).
import * as Http from "node:http"

const big = Buffer.alloc(1024 * 1024, 120)
const server = Http.createServer((request, response) => {
  request.resume()
  if (request.url.startsWith("/big")) {
    // 16 MiB, for transfer throughput
    let left = 16
    response.writeHead(200, { "content-length": String(left * big.length) })
    const write = () => {
      while (left > 0) {
        left--
        if (!response.write(big)) return response.once("drain", write)
      }
      response.end()
    }
    return write()
  }
  request.on("end", () => response.end("ok\n"))
})
const i = process.argv.indexOf("--listen")
if (i >= 0) {
  const target = process.argv[i + 1]
  server.listen(/^\d+$/.test(target) ? { port: Number(target), host: "127.0.0.1" } : target, () => {
    process.stdout.write("ready\n")
  })
} else {
  if (process.env.LISTEN_FDS !== "1") {
    console.error("bench app: no LISTEN_FDS")
    process.exit(1)
  }
  server.listen({ fd: 3 })
}
process.on("SIGTERM", () => process.exit(0))
