/**
 * Under systemd, each app's lines reach the journal as entries of their own, with the service as their
 * SYSLOG_IDENTIFIER (`journalctl -t blog`), through journald's native socket. A python3 datagram listener stands in
 * for journald at its real path, which only root may create, and only where no journald runs.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { expect, it } from "vitest"
import { journalEntry, journalSocket } from "../../src/observe/appLogs.js"
import { describeAsRoot, eventually, get, soad, tempDirs } from "../harness.js"

const dir = tempDirs()

it("a line becomes a journal entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and soad's own fields", () => {
  expect(journalEntry("blog", { time: 0, stream: "stdout", pid: 42, line: "hello", continued: false, bytes: 5 })).toBe(
    "MESSAGE=hello\nPRIORITY=6\nSYSLOG_IDENTIFIER=blog\nSOAD_SERVICE=blog\nSOAD_STREAM=stdout\nSOAD_PID=42\n"
  )
})

const journaldRuns = Fs.existsSync(journalSocket)
describeAsRoot(`the journal${journaldRuns ? " [skipped: a real journald runs here]" : ""}`, () => {
  it.skipIf(journaldRuns)("each app line goes to journald's socket with the service as its identifier", async () => {
    const d = dir()
    const journalDir = Path.dirname(journalSocket)
    const made = !Fs.existsSync(journalDir)
    Fs.mkdirSync(journalDir, { recursive: true })
    const received = Path.join(d, "journal.txt")
    const listener = ChildProcess.spawn("python3", ["-c", `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(${JSON.stringify(journalSocket)})
print("ready", flush=True)
with open(${JSON.stringify(received)}, "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"--\\n")
`], { stdio: ["ignore", "pipe", "inherit"] })
    try {
      await new Promise((resolve) => listener.stdout!.once("data", resolve))
      const app = Path.join(d, "app.mjs")
      Fs.writeFileSync(app, `import http from "node:http"\nconsole.log("hello from the app")\nconsole.log("x\\nSYSLOG_IDENTIFIER=sshd\\nPRIORITY=0")\nhttp.createServer((q, r) => r.end("{}")).listen({ fd: 3 })\n`)
      const stderr = Path.join(d, "stderr.txt")
      const fd = Fs.openSync(stderr, "w")
      const stat = Fs.fstatSync(fd)
      Fs.closeSync(fd)
      // stderr is a file whose device and inode JOURNAL_STREAM names: soad takes it for the journal
      const s = soad(["-s", Path.join(d, "blog.sock"), "--name", "blog", "--", process.execPath, app], {
        env: { ...process.env, JOURNAL_STREAM: `${stat.dev}:${stat.ino}` },
        stderrFile: stderr
      })
      void s
      await eventually(() => Fs.existsSync(Path.join(d, "blog.sock")), 15_000, "soad to listen")
      await get({ socketPath: Path.join(d, "blog.sock") })
      await eventually(() => Fs.existsSync(received) && Fs.readFileSync(received, "utf8").includes("hello from the app"), 15_000, "the entry")
      const entry = Fs.readFileSync(received, "utf8").split("--\n").find((e) => e.includes("hello from the app"))!
      expect(entry).toContain("MESSAGE=hello from the app\n")
      expect(entry).toContain("SYSLOG_IDENTIFIER=blog\n") // --name names the service: journalctl -t blog
      expect(entry).toContain("SOAD_STREAM=stdout\n")
      // an app cannot forge fields: a newline ends its line, so what follows is the MESSAGE of a line of its own
      await eventually(() => Fs.readFileSync(received, "utf8").includes("MESSAGE=SYSLOG_IDENTIFIER=sshd"), 15_000, "the forged line")
      for (const e of Fs.readFileSync(received, "utf8").split("--\n").filter((e) => e !== "")) {
        expect(e.match(/^SYSLOG_IDENTIFIER=/gm)).toEqual(["SYSLOG_IDENTIFIER="])
        expect(e).toContain("SYSLOG_IDENTIFIER=blog\n")
        expect(e).not.toMatch(/^PRIORITY=0$/m)
      }
      // not also on stderr: one copy in the journal
      expect(Fs.readFileSync(stderr, "utf8")).not.toContain("hello from the app")
    } finally {
      listener.kill("SIGKILL")
      Fs.rmSync(journalSocket, { force: true })
      if (made) Fs.rmSync(journalDir, { recursive: true, force: true })
    }
  })
})
