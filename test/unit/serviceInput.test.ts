/**
 * One validator: every rule across a service's settings, tried both ways, through the real command line (argv
 * parsed by @effect/cli, then Serve.toConfig) and through a config file's table (ConfigFile.decode), with the same
 * verdict. The library's ServiceConfig.make refuses what can never work, too.
 */
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { describe, expect, it } from "vitest"
import * as Cli from "../../src/cli/command.js"
import * as ConfigFile from "../../src/ConfigFile.js"
import * as CliFileSystem from "../../src/cli/fileSystem.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import * as Services from "../../src/Services.js"
import { World } from "../../src/testing.js"

const resolver: ConfigFile.Resolver = {
  user: (ref) => (ref === "blog" || ref === 1000 ? { uid: 1000, gid: 1000, groups: [1000], name: "blog" } : undefined),
  gid: (ref) => (ref === "www-data" || ref === 33 ? 33 : undefined),
  root: true
}

/** What the command line says of `argv` (the flags, then `--` and the app): its usage error, or "ok". */
const viaFlags = (argv: ReadonlyArray<string>): Promise<string> =>
  Cli.run([...argv, "--", "/bin/true"], new World().layer).pipe(
    Effect.timeout("200 millis"), // a valid line would run (against the fakes) until interrupted
    Effect.match({
      onFailure: (error) => (error._tag === "TimeoutException" ? "ok" : "message" in error ? String(error.message) : error._tag),
      onSuccess: () => "ok"
    }),
    Effect.provide(Layer.mergeAll(CliFileSystem.layer, NodePath.layer, NodeTerminal.layer, Logger.remove(Logger.defaultLogger))),
    Effect.runPromise
  )

/** What a config file says of one service's table (with a command): its errors, or "ok". */
const viaFile = (table: Record<string, unknown>, defaults?: Record<string, unknown>): string => {
  const data = { ...(defaults ? { defaults } : {}), services: { a: { command: ["/bin/true"], ...table } } }
  const result = ConfigFile.decode("/f.toml", data, resolver)
  return Either.isRight(result) ? "ok" : result.left.errors.join("\n")
}

describe("every rule across settings, from flags and from a file alike", () => {
  const rules: ReadonlyArray<{
    readonly rule: string
    readonly flags: ReadonlyArray<string>
    readonly table: Record<string, unknown>
    readonly said: RegExp
    /** The same settings given to ServiceConfig.make, and what it throws, in its own field names. */
    readonly made?: { readonly fields: Partial<ServiceConfig.Fields>; readonly said: RegExp }
  }> = [
    {
      rule: "the same listener twice",
      flags: ["-s", "/tmp/x.sock", "-s", "/tmp/x.sock"],
      table: { socket: ["/tmp/x.sock", "/tmp/x.sock"] },
      said: /\/tmp\/x\.sock is given twice: a service listens on each address once/
    },
    {
      rule: "the same listener twice, once as -s and once as -l",
      flags: ["-s", "/tmp/x.sock", "-l", "unix:/tmp/x.sock"],
      table: { socket: "/tmp/x.sock", listen: ["unix:/tmp/x.sock"] },
      said: /\/tmp\/x\.sock is given twice/
    },
    {
      rule: "a wildcard and an address of the same port",
      flags: ["-l", ":8080", "-l", "127.0.0.1:8080"],
      table: { listen: [":8080", "127.0.0.1:8080"] },
      said: /127\.0\.0\.1:8080 overlaps \[::\]:8080/
    },
    {
      rule: "0.0.0.0 and an IPv4 address of the same port",
      flags: ["-l", "127.0.0.1:8080", "-l", "0.0.0.0:8080"],
      table: { listen: ["127.0.0.1:8080", "0.0.0.0:8080"] },
      said: /0\.0\.0\.0:8080 overlaps 127\.0\.0\.1:8080/
    },
    {
      rule: "accept mode with an upstream",
      flags: ["-s", "/tmp/x.sock", "--accept", "--upstream", "127.0.0.1:3000"],
      table: { socket: "/tmp/x.sock", accept: true, upstream: "127.0.0.1:3000" },
      said: /accept.* \(a process per connection\) cannot be combined with .*upstream \(proxy mode\): choose one/,
      made: {
        fields: { accept: true, upstream: { _tag: "Tcp", host: "127.0.0.1", port: 3000 } },
        said: /^accept: true \(a process per connection\) cannot be combined with upstream \(proxy mode\): choose one$/
      }
    },
    {
      rule: "accept mode with ready notify",
      flags: ["-s", "/tmp/x.sock", "--accept", "--ready", "notify"],
      table: { socket: "/tmp/x.sock", accept: true, ready: "notify" },
      said: /ready.*notify.* has no meaning with .*accept/,
      made: { fields: { accept: true, ready: "notify" }, said: /^ready: "notify" has no meaning with accept: true/ }
    },
    {
      rule: "max-connections without accept mode",
      flags: ["-s", "/tmp/x.sock", "--max-connections", "4"],
      table: { socket: "/tmp/x.sock", "max-connections": 4 },
      said: /max-connections works with .*accept.* only \(a process per connection\)/,
      made: { fields: { maxConnections: 4 }, said: /^maxConnections works with accept: true only \(a process per connection\)$/ }
    },
    {
      rule: "max-connections-per-source without accept mode",
      flags: ["-s", "/tmp/x.sock", "--max-connections-per-source", "2"],
      table: { socket: "/tmp/x.sock", "max-connections-per-source": 2 },
      said: /max-connections-per-source works with .*accept.* only \(a process per connection\)/,
      made: { fields: { maxConnectionsPerSource: 2 }, said: /^maxConnectionsPerSource works with accept: true only/ }
    },
    {
      rule: "max-accept-rate without accept mode",
      flags: ["-s", "/tmp/x.sock", "--max-accept-rate", "10/1s"],
      table: { socket: "/tmp/x.sock", "max-accept-rate": "10/1s" },
      said: /max-accept-rate works with .*accept.* only \(a process per connection\)/,
      made: {
        fields: { accept: false, maxAcceptRate: { count: 10, per: Duration.seconds(1) } },
        said: /^maxAcceptRate works with accept: true only/
      }
    },
    {
      rule: "max-connections-per-source above max-connections",
      flags: ["-s", "/tmp/x.sock", "--accept", "--max-connections", "4", "--max-connections-per-source", "8"],
      table: { socket: "/tmp/x.sock", accept: true, "max-connections": 4, "max-connections-per-source": 8 },
      said: /max-connections-per-source is 8, more than (--)?max-connections \(4\): one source could never reach it/
    },
    {
      rule: "max-connections-per-source above the default max-connections",
      flags: ["-s", "/tmp/x.sock", "--accept", "--max-connections-per-source", "65"],
      table: { socket: "/tmp/x.sock", accept: true, "max-connections-per-source": 65 },
      said: /max-connections-per-source is 65, more than (--)?max-connections \(64\)/
    },
    {
      rule: "a per-source limit that is not a count",
      flags: ["-s", "/tmp/x.sock", "--accept", "--max-connections-per-source", "0"],
      table: { socket: "/tmp/x.sock", accept: true, "max-connections-per-source": 0 },
      said: /max-connections-per-source: ('0' is not|expected) a whole number, 1 or more/
    },
    {
      rule: "a rate that is not one",
      flags: ["-s", "/tmp/x.sock", "--accept", "--max-accept-rate", "fast"],
      table: { socket: "/tmp/x.sock", accept: true, "max-accept-rate": "fast" },
      said: /max-accept-rate: ('fast' is not|expected) a rate N\/DURATION such as "50\/1s"/
    },
    {
      rule: "max-held without proxy mode",
      flags: ["-s", "/tmp/x.sock", "--max-held", "4"],
      table: { socket: "/tmp/x.sock", "max-held": 4 },
      said: /max-held works in proxy mode only: add .*upstream/,
      made: { fields: { maxHeld: 4 }, said: /^maxHeld works in proxy mode only: add upstream$/ }
    },
    {
      rule: "a waiting page without proxy mode",
      flags: ["-s", "/tmp/x.sock", "--waiting-page", "2"],
      table: { socket: "/tmp/x.sock", "waiting-page": 2 },
      said: /waiting-page works in proxy mode only: add .*upstream/,
      made: { fields: { waitingPage: { after: Duration.seconds(2), file: undefined } }, said: /^waitingPage works in proxy mode only: add upstream$/ }
    },
    {
      rule: "a waiting page's file without the waiting page",
      flags: ["-s", "/tmp/x.sock", "--upstream", "auto", "--waiting-page-file", "/etc/hostname"],
      table: { socket: "/tmp/x.sock", upstream: "auto", "waiting-page-file": "/etc/hostname" },
      said: /waiting-page-file needs .*waiting-page too/
    },
    {
      rule: "a count that is not one",
      flags: ["-s", "/tmp/x.sock", "--backlog", "0"],
      table: { socket: "/tmp/x.sock", backlog: "0" },
      said: /backlog: ('0' is not|expected) a whole number, 1 or more/
    },
    {
      rule: "an unknown user",
      flags: ["-s", "/tmp/x.sock", "--socket-user", "nobody-x"],
      table: { socket: "/tmp/x.sock", "socket-user": "nobody-x" },
      said: /socket-user: no user "nobody-x"/
    }
  ]

  it.each(rules)("$rule", async ({ flags, made, said, table }) => {
    const fromFlags = await viaFlags(flags)
    const fromFile = viaFile(table)
    expect(fromFlags).toMatch(said)
    expect(fromFile).toMatch(said)
    expect(fromFile.split("\n")).toHaveLength(1)
    if (made === undefined) return
    const make = () => ServiceConfig.make({ listeners: ["/tmp/x.sock"], command: ["x"], ...made.fields })
    expect(make).toThrow(ServiceConfig.ServiceConfigError)
    expect(make).toThrow(made.said)
  })

  it("the same settings, valid, pass both ways", async () => {
    expect(await viaFlags(["-s", "/tmp/soad-valid.sock", "-l", "127.0.0.1:0", "-l", "[::1]:0", "--upstream", "auto", "--waiting-page", "2"]))
      .toBe("ok")
    expect(viaFile({ socket: "/tmp/soad-valid.sock", listen: ["127.0.0.1:0", "[::1]:0"], upstream: "auto", "waiting-page": 2 })).toBe("ok")
  })

  it("accept mode's limits, valid, pass both ways and reach the config", async () => {
    const flags = ["-s", "/tmp/soad-valid.sock", "--accept", "--max-connections", "8", "--max-connections-per-source", "2", "--max-accept-rate", "10/s"]
    expect(await viaFlags(flags)).toBe("ok")
    const table = { socket: "/tmp/soad-valid.sock", accept: true, "max-connections": 8, "max-connections-per-source": 2, "max-accept-rate": "10/s" }
    expect(viaFile(table)).toBe("ok")
    const [service] = Either.getOrThrow(ConfigFile.decode("/f.toml", { services: { a: { command: ["x"], ...table } } }, resolver)).services
    expect(service!.mode).toEqual({ _tag: "Accept", maxConnections: 8, maxConnectionsPerSource: 2, maxAcceptRate: { count: 10, per: Duration.seconds(1) } })
  })

  it("a per-source limit in [defaults] above a service's max-connections is lowered to it, not refused", () => {
    const file = ConfigFile.decode("/f.toml", {
      defaults: { "max-connections-per-source": 16, "max-accept-rate": "5/1s" },
      services: { small: { socket: "/tmp/s.sock", command: ["x"], accept: true, "max-connections": 4 } }
    }, resolver)
    const [small] = Either.getOrThrow(file).services
    expect(small!.mode).toMatchObject({ _tag: "Accept", maxConnectionsPerSource: 4, maxAcceptRate: { count: 5 } })
  })

  it("a setting of one mode in [defaults] applies to that mode's services and leaves the others alone", () => {
    const defaults = {
      "max-connections": 4,
      "max-connections-per-source": 2,
      "max-accept-rate": "10/1s",
      "max-held": 8,
      "waiting-page": 2,
      ready: "notify"
    }
    expect(viaFile({ socket: "/tmp/x.sock" }, defaults)).toBe("ok")
    expect(viaFile({ socket: "/tmp/x.sock", accept: true }, defaults)).toBe("ok")
    expect(viaFile({ socket: "/tmp/x.sock", upstream: "auto" }, defaults)).toBe("ok")
    const file = ConfigFile.decode("/f.toml", {
      defaults,
      services: {
        plain: { socket: "/tmp/p.sock", command: ["x"] },
        each: { socket: "/tmp/e.sock", command: ["x"], accept: true },
        proxied: { socket: "/tmp/q.sock", command: ["x"], upstream: "auto" }
      }
    }, resolver)
    const [plain, each, proxied] = Either.getOrThrow(file).services
    expect([plain!.mode, plain!.ready]).toEqual([{ _tag: "HandOff" }, "notify"])
    expect([each!.mode, each!.ready]).toEqual([
      { _tag: "Accept", maxConnections: 4, maxConnectionsPerSource: 2, maxAcceptRate: { count: 10, per: Duration.seconds(1) } },
      "accept"
    ])
    expect(proxied!.mode).toMatchObject({ _tag: "Proxy", upstream: { _tag: "Auto" }, maxHeld: 8, waitingPage: { after: Duration.seconds(2) } })
    expect(proxied!.ready).toBe("notify")
  })
})

describe("the app's environment (config file and library)", () => {
  it.each([
    [{ "": "x" }, /services\.a\.env\."": "" is no environment variable name: a name is not empty and has no '=' or NUL/],
    [{ "A=B": "x" }, /services\.a\.env\."A=B": "A=B" is no environment variable name/],
    [{ A: "x\u0000y" }, /services\.a\.env\.A: the value of "A" contains a NUL byte/]
  ])("%j is refused", (env, said) => {
    expect(viaFile({ socket: "/tmp/x.sock", env })).toMatch(said)
    expect(() => ServiceConfig.make({ listeners: ["/tmp/x.sock"], command: ["x"], env })).toThrow(ServiceConfig.ServiceConfigError)
  })

  it("ServiceConfig.make refuses a listener given twice", () => {
    expect(() => ServiceConfig.make({ listeners: ["/tmp/x.sock", "unix:/tmp/x.sock"], command: ["x"] })).toThrow(/overlaps/)
    expect(ServiceConfig.make({ listeners: ["127.0.0.1:0", "127.0.0.1:0"], command: ["x"] }).listeners).toHaveLength(2)
  })
})

describe("comparing configs, as a reload does", () => {
  const base = { listeners: ["/tmp/x.sock"], command: ["x"] as [string] }
  it("by structure: env in another order, a duration written another way, are the same config", () => {
    const a = ServiceConfig.make({ ...base, env: { A: "1", B: "2" }, idleTimeout: "5 minutes" })
    const b = ServiceConfig.make({ ...base, env: { B: "2", A: "1" }, idleTimeout: 300_000 })
    expect(ServiceConfig.equivalent(a, b)).toBe(true)
  })
  it("a changed value is a change", () => {
    const a = ServiceConfig.make({ ...base, env: { A: "1" } })
    expect(ServiceConfig.equivalent(a, ServiceConfig.make({ ...base, env: { A: "2" } }))).toBe(false)
    expect(ServiceConfig.equivalent(a, ServiceConfig.make({ ...base, env: { A: "1" }, idleTimeout: "61 seconds" }))).toBe(false)
    expect(ServiceConfig.equivalent(a, ServiceConfig.make({ ...base, listeners: ["/tmp/y.sock"], env: { A: "1" } }))).toBe(false)
  })
  it("a reload names the mode's settings that changed, as the file names them", () => {
    // Fault: the mode compared, or named, as one value ("mode changed"), where the log has always said which setting.
    const make = (fields: Partial<ServiceConfig.Fields>) => ServiceConfig.make({ ...base, ...fields })
    const proxied = make({ upstream: { _tag: "Auto" }, maxHeld: 2 })
    expect(Services.changedKeys(proxied, make({ upstream: { _tag: "Auto" }, maxHeld: 4 }))).toEqual(["max-held"])
    expect(Services.changedKeys(make({}), make({ accept: true }))).toEqual(["accept"])
    expect(Services.changedKeys(make({ accept: true }), make({ accept: true, maxAcceptRate: { count: 1, per: Duration.seconds(1) } })))
      .toEqual(["max-accept-rate"])
    expect(Services.changedKeys(proxied, make({ accept: true, maxConnections: 8 }))).toEqual(["upstream", "max-held", "accept", "max-connections"])
    expect(Services.changedKeys(proxied, make({ upstream: { _tag: "Auto" }, maxHeld: 2, idleTimeout: "1 second" }))).toEqual(["time-until-stop"])
  })
})

describe("a service's mode carries its own settings, and only those", () => {
  const fromFile = (table: Record<string, unknown>) =>
    Either.getOrThrow(ConfigFile.decode("/f.toml", { services: { a: { command: ["x"], socket: "/tmp/m.sock", ...table } } }, resolver))
      .services[0]!
  const fromMake = (fields: Partial<ServiceConfig.Fields>) => ServiceConfig.make({ listeners: ["/tmp/m.sock"], command: ["x"], ...fields })
  const flat = ["upstream", "maxHeld", "waitingPage", "accept", "maxConnections", "maxConnectionsPerSource", "maxAcceptRate"]
  const rate = { count: 10, per: Duration.seconds(1) }
  it.each([
    { tag: "HandOff", table: {}, fields: {}, keys: ["_tag"] },
    {
      tag: "Proxy",
      table: { upstream: "auto", "max-held": 4, "waiting-page": 2 },
      fields: { upstream: { _tag: "Auto" }, maxHeld: 4, waitingPage: { after: Duration.seconds(2), file: undefined } },
      keys: ["_tag", "maxHeld", "upstream", "waitingPage"]
    },
    {
      tag: "Accept",
      table: { accept: true, "max-connections": 8, "max-connections-per-source": 2, "max-accept-rate": "10/1s" },
      fields: { accept: true, maxConnections: 8, maxConnectionsPerSource: 2, maxAcceptRate: rate },
      keys: ["_tag", "maxAcceptRate", "maxConnections", "maxConnectionsPerSource"]
    }
  ] as const)("$tag, from a file and from make alike", ({ fields, keys, table, tag }) => {
    const file = fromFile(table)
    const made = fromMake(fields as Partial<ServiceConfig.Fields>)
    for (const config of [file, made]) {
      expect(config.mode._tag).toBe(tag)
      expect(Object.keys(config.mode).sort()).toEqual(keys)
      expect(Object.keys(config).filter((key) => flat.includes(key))).toEqual([])
    }
    expect(ServiceConfig.same(file.mode, made.mode)).toBe(true)
  })

  it("make takes a built mode too, as it is, but not with the flat settings", () => {
    const accept: ServiceConfig.Accept = { _tag: "Accept", maxConnections: 4, maxConnectionsPerSource: 2, maxAcceptRate: rate }
    expect(fromMake({ mode: accept }).mode).toEqual(accept)
    expect(ServiceConfig.equivalent(fromMake({ mode: accept }), fromMake({ accept: true, maxConnections: 4, maxConnectionsPerSource: 2, maxAcceptRate: rate })))
      .toBe(true)
    // A per-source limit above maxConnections could never be reached: lowered, as with the flat settings.
    expect(fromMake({ mode: { ...accept, maxConnectionsPerSource: 9 } }).mode).toMatchObject({ maxConnectionsPerSource: 4 })
    expect(() => fromMake({ mode: ServiceConfig.handOff, maxHeld: 2, accept: false }))
      .toThrow(/^mode cannot be combined with maxHeld, accept: give the mode one way$/)
    expect(() => fromMake({ mode: accept, ready: "notify" })).toThrow(/^ready: "notify" has no meaning with accept: true/)
  })
})
