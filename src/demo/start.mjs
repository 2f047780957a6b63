// `npm start`: runs soad with the demo app on 127.0.0.1:8080 (or $PORT) and says how to reach it.
//
// Nothing may outlive the demo, however it is stopped. npm runs this script through `sh -c`; a SIGTERM to npm
// kills that sh and leaves this script (and so soad, on the port) running, and a SIGKILL reaches nobody. So:
// - soad runs in its own process group, and this script passes it exactly one stop signal: Ctrl-C (which the
//   terminal sends to npm, sh and this script together), SIGTERM or SIGHUP to this script. A second SIGINT or
//   SIGTERM makes soad SIGKILL its apps, so soad must not get the terminal's one too.
// - this script watches its parent and grandparent (npm's `sh -c` and npm): once either is gone, it stops soad as
//   if it had got SIGTERM (a SIGKILL to npm leaves its sh and this script running).
// - on Linux, if this script is killed outright (SIGKILL), the kernel tells soad (util-linux's
//   `setpriv --pdeathsig`). Not directly: a parent-death signal comes again each time the children move to another
//   thread of the dying parent, and Node has several, so soad would get two or more SIGTERMs. soad's parent is a
//   single-threaded sh, which itself dies with this script (SIGKILL, however often) and ignores the signals this
//   script passes to the group; soad resets them (Node does at start-up), so it gets exactly one SIGTERM.
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const here = Path.dirname(fileURLToPath(import.meta.url))
const bin = Path.resolve(here, "..", "..", "dist", "soad") // the command as installed
if (!Fs.existsSync(bin)) {
  // a fresh clone: the package has no prepare script, so `npm install` builds nothing
  console.log("soad is not built yet in this clone: building it first (npm run build)")
  const built = ChildProcess.spawnSync("npm", ["run", "build"], { cwd: Path.resolve(here, "..", ".."), stdio: "inherit" })
  if (built.status !== 0 || !Fs.existsSync(bin)) {
    console.error("soad: the build failed (see above): it needs python3, make and a C compiler")
    process.exit(1)
  }
}
const port = process.env.PORT ?? "8080"
const idle = process.env.IDLE ?? "10"
console.log(`soad demo: open http://127.0.0.1:${port}/ or run: curl http://127.0.0.1:${port}/`)
console.log(`The app starts on the first request and stops after ${idle} s without one. Ctrl-C stops soad.\n`)

/** setpriv with --pdeathsig (util-linux >= 2.33), where there is one. */
const pdeathsig = () => {
  if (process.platform !== "linux") return false
  const help = ChildProcess.spawnSync("setpriv", ["--help"], { encoding: "utf8" })
  return help.status === 0 && help.stdout.includes("--pdeathsig")
}
const soadArgs = ["--name", "demo", "-l", `127.0.0.1:${port}`, "-t", idle, "--", process.execPath, Path.join(here, "app.mjs")]
const keeper = `trap '' INT TERM HUP; setpriv --pdeathsig TERM -- "$@"; exit $?` // `; exit`: sh must not exec soad
const [command, args] = pdeathsig()
  ? ["setpriv", ["--pdeathsig", "KILL", "--", "/bin/sh", "-c", keeper, "soad-demo", bin, ...soadArgs]]
  : [bin, soadArgs]
const soad = ChildProcess.spawn(command, args, { stdio: "inherit", detached: true })

let stopping = false
/** Passes one stop signal to soad; soad stops its apps and exits, and this script exits with it. */
const stop = (signal) => {
  if (stopping) return
  stopping = true
  try {
    process.kill(-soad.pid, signal) // its process group: soad (and the sh that keeps it)
  } catch {
    // gone already
  }
}
process.on("SIGINT", () => stop("SIGINT"))
process.on("SIGTERM", () => stop("SIGTERM"))
process.on("SIGHUP", () => stop("SIGTERM")) // the terminal is gone: soad would pass a SIGHUP on to the app
/** The parent of a process (Linux /proc), or undefined where it cannot be read. */
const parentOf = (pid) => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return undefined
  }
}
const parent = process.ppid
const grandparent = parentOf(parent)
const watch = setInterval(() => {
  // Adopted, or the parent was: npm (or its sh) is gone.
  if (process.ppid !== parent || (grandparent !== undefined && parentOf(parent) !== grandparent)) stop("SIGTERM")
}, 250)
soad.on("exit", (code, signal) => {
  clearInterval(watch)
  process.exit(code ?? (signal === null ? 1 : 0))
})
