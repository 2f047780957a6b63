// `npm start`: runs soad with the demo app on 127.0.0.1:8080 (or $PORT) and says how to reach it.
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const here = Path.dirname(fileURLToPath(import.meta.url))
const bin = Path.resolve(here, "..", "..", "dist", "soad") // the command as installed
if (!Fs.existsSync(bin)) {
  console.error("soad is not built yet: run `npm install` first (it builds soad), then `npm start`.")
  process.exit(1)
}
const port = process.env.PORT ?? "8080"
const idle = process.env.IDLE ?? "10"
console.log(`soad demo: open http://127.0.0.1:${port}/ or run: curl http://127.0.0.1:${port}/`)
console.log(`The app starts on the first request and stops after ${idle} s without one. Ctrl-C stops soad.\n`)
const soad = ChildProcess.spawn(
  bin,
  ["-l", `127.0.0.1:${port}`, "-t", idle, "--", process.execPath, Path.join(here, "app.mjs")],
  { stdio: "inherit" }
)
// Ctrl-C reaches soad from the terminal; a signal sent to this script alone is passed on.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (signal !== "SIGINT") soad.kill(signal)
  })
}
soad.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 0)))
