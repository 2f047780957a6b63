/**
 * The light path's command lines: what it runs itself (control verbs, --version, help), what it refuses with a
 * hint (a verb followed by an app's command), and everything else left to the full command tree, which says what
 * is wrong in today's words.
 */
import { describe, expect, it } from "vitest"
import { recognize } from "../../src/cli/controlArgs.js"

describe("the light path's command lines", () => {
  it("runs the control verbs, with the flags that pick a soad before or after the verb", () => {
    expect(recognize(["status"])).toEqual({
      _tag: "Control",
      command: { verb: "status", json: false, all: false, patterns: [], which: {} }
    })
    expect(recognize(["status", "--json", "blog*", "--all", "wiki"])).toEqual({
      _tag: "Control",
      command: { verb: "status", json: true, all: true, patterns: ["blog*", "wiki"], which: {} }
    })
    expect(recognize(["-c", "apps.toml", "wake", "blog"])).toEqual({
      _tag: "Control",
      command: { verb: "wake", typed: "wake", service: "blog", which: { config: "apps.toml" } }
    })
    expect(recognize(["--name", "a", "stop", "blog", "--name=b", "--control", "/x.sock"])).toEqual({
      _tag: "Control",
      command: { verb: "sleep", typed: "stop", service: "blog", which: { name: "b", control: "/x.sock" } }
    })
    expect(recognize(["start", "blog"])).toMatchObject({ command: { verb: "wake", typed: "start" } })
    expect(recognize(["restart", "blog"])).toMatchObject({ command: { verb: "restart", service: "blog" } })
    expect(recognize(["reload", "--config", "a.toml"])).toEqual({ _tag: "Control", command: { verb: "reload", which: { config: "a.toml" } } })
    expect(recognize(["logs"])).toEqual({
      _tag: "Control",
      command: { verb: "logs", service: undefined, lines: 10, follow: false, which: {} }
    })
    expect(recognize(["logs", "blog", "-f", "-n", "0"])).toEqual({
      _tag: "Control",
      command: { verb: "logs", service: "blog", lines: 0, follow: true, which: {} }
    })
    expect(recognize(["logs", "--lines=20", "--follow"])).toMatchObject({ command: { lines: 20, follow: true } })
  })

  it("prints --version and help itself", () => {
    expect(recognize(["--version"])).toEqual({ _tag: "Version" })
    expect(recognize(["--help"])).toEqual({ _tag: "Help", topic: "" })
    expect(recognize(["-h"])).toEqual({ _tag: "Help", topic: "" })
    expect(recognize(["status", "--help"])).toEqual({ _tag: "Help", topic: "status" })
    expect(recognize(["check", "-h"])).toEqual({ _tag: "Help", topic: "check" })
  })

  it("refuses a verb followed by what looks like an app's command, with the line to use instead", () => {
    // Fault: `soad sleep 30 5` (the user forgot --) went to the tree, which said only "unexpected argument '5'".
    expect(recognize(["sleep", "30", "5"])).toEqual({
      _tag: "Refused",
      message: "'sleep 30 5' is not a soad command (soad sleep takes one NAME): to run 'sleep 30 5' as the app, " +
        "give it after --, e.g. soad -s PATH -- sleep 30 5"
    })
    expect(recognize(["start", "npm", "run", "dev"])).toMatchObject({ _tag: "Refused" })
  })

  it("leaves everything else to the full command tree, which says what is wrong in today's words", () => {
    const full = [
      [], ["-s", "/a.sock", "--", "sleep", "30"], ["frobnicate"], ["wake"], ["sleep"], ["logs", "-n", "x"],
      ["logs", "-n"], ["logs", "-n5"], ["logs", "a", "b"], ["status", "--jsn"], ["status", "--json", "--json"],
      ["--name", "../etc", "status"], ["--name"], ["wake", "x", "--name"], ["-t", "5", "status"], ["--log-level", "debug", "status"],
      ["-s", "/a.sock", "sleep", "30"], ["reload", "x"], ["status", "--", "x"], ["--version", "x"], ["check", "a.toml"],
      ["--completions", "bash"], ["status", "--help", "x"], ["--name", "a", "--name", "b", "status"], ["wake", "-x"]
    ]
    for (const argv of full) expect(recognize(argv), argv.join(" ")).toEqual({ _tag: "Full" })
  })
})
