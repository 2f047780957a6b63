import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as ConfigFile from "../../src/ConfigFile.js"

const resolver: ConfigFile.Resolver = {
  user: (name) => (name === "blog" || name === 1000 ? { uid: 1000, gid: 1000, groups: [1000, 27] } : undefined),
  gid: (name) => (name === "www-data" ? 33 : typeof name === "number" ? name : undefined),
  root: true
}

const decode = (data: unknown) => ConfigFile.decode("/etc/soad/apps.toml", data, resolver)

describe("the config file", () => {
  it("maps every key to the service's config, defaults first, the service's own keys winning", () => {
    const result = decode({
      "max-running": 4,
      "min-available-memory": "200MB",
      "min-warm": 10,
      defaults: { "time-until-stop": 300, "stop-timeout": 20, "shutdown-signal": "INT" },
      services: {
        blog: {
          listen: ["http=127.0.0.1:8080", "./rel.sock"],
          socket: "/run/blog.sock",
          command: ["gunicorn", "blog:app"],
          cwd: "/srv/blog",
          env: { A: "1" },
          "inherit-env": false,
          user: "blog",
          group: "www-data",
          "time-until-stop": 60,
          "start-timeout": 5,
          "min-uptime": 2,
          "max-backoff": 30,
          "idle-ignores-open-connections": true,
          backlog: 64,
          "socket-mode": "0660",
          "socket-user": 1000,
          "socket-group": "www-data"
        }
      }
    })
    expect(Either.isLeft(result) ? result.left.errors : []).toEqual([])
    const file = Either.getOrThrow(result)
    expect(file.budget).toEqual({ maxRunning: 4, minAvailableMemory: 200e6, minWarm: Duration.seconds(10) })
    const blog = file.services[0]!
    expect(blog.name).toBe("blog")
    expect(blog.listeners).toEqual([
      { name: "soad", address: { _tag: "Unix", path: "/run/blog.sock" } },
      { name: "http", address: { _tag: "Tcp", host: "127.0.0.1", port: 8080 } },
      { name: "soad", address: { _tag: "Unix", path: "/etc/soad/rel.sock" } }
    ])
    expect(blog.command).toEqual(["gunicorn", "blog:app"])
    expect(blog.cwd).toBe("/srv/blog")
    expect(blog.env).toEqual({ A: "1" })
    expect(blog.inheritEnv).toBe(false)
    expect(blog.user).toEqual({ uid: 1000, gid: 33, groups: [33, 1000, 27] })
    expect(Duration.toMillis(blog.idleTimeout)).toBe(60_000)
    expect(Duration.toMillis(blog.stopTimeout)).toBe(20_000) // from the defaults
    expect(blog.shutdownSignal.name).toBe("SIGINT") // from the defaults
    expect(Duration.toMillis(blog.startTimeout)).toBe(5000)
    expect(Duration.toMillis(blog.minUptime)).toBe(2000)
    expect(Duration.toMillis(blog.maxBackoff)).toBe(30_000)
    expect(blog.idleIgnoresOpenConnections).toBe(true)
    expect(blog.socket).toEqual({ backlog: 64, mode: 0o660, uid: 1000, gid: 33 })
  })

  it.each([
    [{ services: {} }, "services: expected at least one [services.NAME] table, found none"],
    [{ services: { a: { listen: "/x.sock", command: ["x"] } } }, "services.a.listen: expected a list of strings, found \"/x.sock\""],
    [{ services: { a: { listen: ["/x.sock"], command: [] } } }, "services.a.command: expected the app's program and arguments"],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"], env: { A: 1 } } } }, "services.a.env: expected a table of strings"],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"], "inherit-env": "no" } } }, "services.a.inherit-env: expected true or false, found \"no\""],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"], backlog: 0 } } }, "services.a.backlog: expected a whole number, 1 or more, found 0"],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"], "time-until-stop": 0 } } }, "services.a.time-until-stop: expected a positive number of seconds or a duration such as 90s, 5m, 1h30m, 250ms, from 0.001 (1 ms) to 2147483.647 (about 24.8 days), found 0"],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"], cwd: "relative" } } }, "services.a.cwd: expected an absolute path, found \"relative\""],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"], group: "nogroup-x" } } }, "services.a.group: no group \"nogroup-x\""],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"] }, b: { listen: ["/x.sock"], command: ["y"] } } }, "services.b.listen: /x.sock is already a listener of service a"],
    [{ "min-available-memory": "lots", services: { a: { listen: ["/x.sock"], command: ["x"] } } }, "min-available-memory: expected a size such as \"200MB\" or \"1GiB\", found \"lots\""],
    [{ "max-runing": 2, services: { a: { listen: ["/x.sock"], command: ["x"] } } }, "max-runing: unknown key; did you mean max-running?"],
    [{ services: { a: { listen: ["/x.sock"], command: ["x"], upstream: "fd:3" } } }, "services.a.upstream: 'fd:3': an upstream is HOST:PORT, a UNIX socket path, or auto"]
  ])("%j", (data, message) => {
    const result = decode(data)
    expect(Either.isLeft(result)).toBe(true)
    const errors = Either.isLeft(result) ? result.left.errors : []
    expect(errors.some((error) => error.startsWith(`/etc/soad/apps.toml: ${message}`)), errors.join("\n")).toBe(true)
  })

  it("running as another user needs root", () => {
    const result = ConfigFile.decode("/f.toml", { services: { a: { listen: ["/x.sock"], command: ["x"], user: "blog" } } }, {
      ...resolver,
      root: false
    })
    expect(Either.isLeft(result) && result.left.errors).toEqual(["/f.toml: services.a.user: running the app as another user needs soad to run as root"])
  })

  it("upstream: an address or auto", () => {
    const one = (upstream: string) => {
      const { mode } = Either.getOrThrow(decode({ services: { a: { listen: ["/x.sock"], command: ["x"], upstream } } })).services[0]!
      return mode._tag === "Proxy" ? mode.upstream : mode
    }
    expect(one("127.0.0.1:3000")).toEqual({ _tag: "Tcp", host: "127.0.0.1", port: 3000 })
    expect(one("auto")).toEqual({ _tag: "Auto" })
    expect(one("/run/app-upstream.sock")).toEqual({ _tag: "Unix", path: "/run/app-upstream.sock" })
  })

  it("ready: accept (the default) or notify; anything else is refused", () => {
    const service = (fields: Record<string, unknown>) => decode({ services: { a: { listen: ["/x.sock"], command: ["x"], ...fields } } })
    expect(Either.getOrThrow(service({})).services[0]!.ready).toBe("accept")
    expect(Either.getOrThrow(service({ ready: "notify" })).services[0]!.ready).toBe("notify")
    expect(Either.isLeft(service({ ready: "soon" }))).toBe(true)
  })

  it("durations take units, and 0 only where the flag takes it (start-timeout and max-backoff refuse it)", () => {
    const service = (fields: Record<string, unknown>) => decode({ services: { a: { listen: ["/x.sock"], command: ["x"], ...fields } } })
    const file = Either.getOrThrow(service({ "time-until-stop": "5m", "stop-timeout": "250ms", "min-uptime": 0, "max-backoff": "1h30m" }))
    expect(Duration.toMillis(file.services[0]!.idleTimeout)).toBe(300_000)
    expect(Duration.toMillis(file.services[0]!.stopTimeout)).toBe(250)
    expect(Duration.toMillis(file.services[0]!.maxBackoff)).toBe(5_400_000)
    for (const key of ["start-timeout", "max-backoff", "time-until-stop"]) {
      const result = service({ [key]: 0 })
      expect(Either.isLeft(result) && result.left.errors[0], key).toMatch(new RegExp(`services\\.a\\.${key}: expected a positive number of seconds .*, found 0$`))
    }
  })

  it("parses sizes", () => {
    expect(ConfigFile.parseBytes("200MB")).toBe(200e6)
    expect(ConfigFile.parseBytes("1.5GiB")).toBe(1.5 * 1024 ** 3)
    expect(ConfigFile.parseBytes("512M")).toBe(512e6)
    expect(ConfigFile.parseBytes(1024)).toBe(1024)
    expect(ConfigFile.parseBytes("12 parsecs")).toBeUndefined()
  })
})

describe("soad check's summary of a service", () => {
  it("says where a proxied app listens, that it must send READY=1, its waiting page, and an accept service's limit", () => {
    // Fault: a service set to ready = "notify" or accept = true that soad check described like any other, so an
    // operator could not see what would run. Promise: each mode is named on the service's lines.
    const result = decode({
      services: {
        web: { listen: [":8080"], command: ["node", "server.js"], upstream: "auto", ready: "notify", "waiting-page": 2 },
        api: { listen: ["/run/api.sock"], command: ["gunicorn", "api:app"], upstream: "127.0.0.1:3000" },
        echo: { listen: [":7000"], command: ["./handler"], accept: true, "max-connections": 16 }
      }
    })
    if (Either.isLeft(result)) throw new Error(result.left.errors.join("\n"))
    const text = ConfigFile.describe(result.right)
    const service = (name: string) => text.split("\n\n").find((block) => block.startsWith(`[${name}]`)) ?? ""
    expect(service("web")).toContain("  upstream auto (a free 127.0.0.1 port at each start, given to the app as PORT)")
    expect(service("web")).toContain(`  ready    when the app sends READY=1 (ready = "notify"), within 1m`)
    expect(service("web")).toContain("  waiting  a page after 2s")
    expect(service("api")).toContain("  upstream 127.0.0.1:3000")
    expect(service("api")).not.toContain("ready")
    expect(service("echo")).toContain("  accept   a process per connection, at most 16 at once")
  })
})

describe("a reload that changes one service of many", () => {
  it("reuses the last load's config of every unchanged table (the same object), and resolves the changed one and any that depends on the machine", () => {
    const table = (i: number, t: number) => ({ listen: [`/run/s${i}.sock`], command: ["x"], "time-until-stop": t })
    const first = Either.getOrThrow(decode({ services: { a: table(1, 60), b: table(2, 60), c: { ...table(3, 60), user: "blog" } } }))
    const second = Either.getOrThrow(decode({ services: { a: table(1, 60), b: table(2, 61), c: { ...table(3, 60), user: "blog" } } }))
    expect(second.services[0]).toBe(first.services[0]) // unchanged: the same config, compared at once
    expect(second.services[1]).not.toBe(first.services[1])
    expect(Duration.toMillis(second.services[1]!.idleTimeout)).toBe(61_000)
    expect(second.services[2]).not.toBe(first.services[2]) // its user is looked up again
    expect(second.services[2]).toEqual(first.services[2])
  })
})
