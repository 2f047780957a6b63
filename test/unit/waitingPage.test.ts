/**
 * The waiting page (--waiting-page): which held request gets it (a pure look at the peeked head), and proxy mode
 * on fake layers under TestClock: only a browser navigation that has waited SECONDS is answered, everything else
 * waits for the app and is relayed to it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Activator from "../../src/Activator.js"
import * as ServiceConfig from "../../src/ServiceConfig.js"
import * as Registry from "../../src/Registry.js"
import * as WaitingPage from "../../src/internal/waitingPage.js"
import { advance, settle, supervised } from "../clock.js"
import { captureEvents, World } from "../fakes.js"

const upstream = { host: "127.0.0.1", port: 8000 } as const

const head = (method: string, accept: string | undefined, extra = "") =>
  `${method} /page HTTP/1.1\r\nHost: example.org\r\n${accept === undefined ? "" : `Accept: ${accept}\r\n`}${extra}\r\n`
const navigation = head("GET", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
const classify = (text: string) => WaitingPage.classify(Buffer.from(text, "latin1"))

describe("waiting page: which request gets it", () => {
  it("a GET or HEAD whose Accept names text/html (a browser navigation)", () => {
    expect(classify(navigation)).toEqual({ _tag: "Page", method: "GET" })
    expect(classify(head("HEAD", "text/html"))).toEqual({ _tag: "Page", method: "HEAD" })
    expect(classify("GET / HTTP/1.0\nACCEPT:  Text/HTML \n\n")).toEqual({ _tag: "Page", method: "GET" })
  })

  it("a POST never: a page that reloads would send it again; nor a fetch, a WebSocket, HTTP/2 or TLS", () => {
    expect(classify(head("POST", "text/html") + "a=1")).toEqual({ _tag: "Wait" })
    expect(classify(head("GET", "application/json"))).toEqual({ _tag: "Wait" })
    expect(classify(head("GET", "*/*"))).toEqual({ _tag: "Wait" })
    expect(classify(head("GET", "text/htmlx"))).toEqual({ _tag: "Wait" })
    expect(classify(head("GET", undefined))).toEqual({ _tag: "Wait" })
    expect(classify(head("GET", "text/html", "Upgrade: websocket\r\nConnection: Upgrade\r\n"))).toEqual({ _tag: "Wait" })
    expect(classify("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")).toEqual({ _tag: "Wait" })
    expect(classify("\x16\x03\x01\x02\x00\x01")).toEqual({ _tag: "Wait" })
  })

  it("a head not complete yet is looked at again; one longer than 16 KiB is not", () => {
    expect(classify("")).toEqual({ _tag: "Partial" })
    expect(classify("GET / HTTP/1.1\r\nAccept: text/html\r\n")).toEqual({ _tag: "Partial" })
    expect(classify(`GET / HTTP/1.1\r\nCookie: ${"x".repeat(WaitingPage.maxHead)}`)).toEqual({ _tag: "Wait" })
  })

  it("the response: 503, Retry-After, no caching, closed; HEAD without the body; the name escaped", () => {
    const page = WaitingPage.defaultPage("<b>&blog", 3)
    expect(page).toContain("&lt;b&gt;&amp;blog is starting")
    expect(page).not.toContain("<b>&blog")
    expect(page).not.toMatch(/(src|href)=/) // no external resources
    const get = Buffer.from(WaitingPage.response("GET", page, 3)).toString("utf8")
    expect(get).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/)
    expect(get).toContain("\r\nRetry-After: 3\r\n")
    expect(get).toContain("\r\nCache-Control: no-store\r\n")
    expect(get).toContain("\r\nConnection: close\r\n")
    expect(get).toContain(`\r\nContent-Length: ${Buffer.byteLength(page)}\r\n`)
    expect(get.endsWith(`\r\n\r\n${page}`)).toBe(true)
    const headOnly = Buffer.from(WaitingPage.response("HEAD", page, 3)).toString("utf8")
    expect(headOnly.endsWith("\r\n\r\n")).toBe(true)
    expect(headOnly).toContain(`Content-Length: ${Buffer.byteLength(page)}`)
    expect(WaitingPage.customPage("<h1>{{service}}</h1>{{service}}", "a&b")).toBe("<h1>a&amp;b</h1>a&amp;b")
  })
})

const setup = (waitingPage: ServiceConfig.WaitingPage | undefined) =>
  Effect.gen(function*() {
    const world = new World()
    const { events, layer } = captureEvents()
    const context = yield* Layer.build(Layer.mergeAll(world.layer, layer, Registry.layer))
    const config = ServiceConfig.make({
      name: "blog",
      listeners: [{ name: "soad", address: { _tag: "Tcp", host: "0.0.0.0", port: 80 } }],
      command: ["app"],
      upstream: { _tag: "Tcp", ...upstream },
      startTimeout: Duration.seconds(60),
      waitingPage
    })
    const listeners = yield* Activator.listen(config).pipe(Effect.provide(context))
    const fiber = yield* Activator.serve(config, listeners).pipe(Effect.provide(context), Effect.forkScoped, supervised)
    yield* settle
    const handle = (yield* Effect.provide(Registry.Registry, context).pipe(Effect.flatMap((registry) => registry.services)))[0]!
    return { world, relay: world.relay, named: (name: string) => events.filter((event) => event.name === name), handle, fiber }
  })

const twoSeconds: ServiceConfig.WaitingPage = { after: Duration.seconds(2), file: undefined }

describe("waiting page: proxy mode", () => {
  it.scoped("a navigation that has waited SECONDS gets the page and leaves; the others are relayed once the app is up", () =>
    Effect.gen(function*() {
      // The promise: a browser sees a page instead of a spinner; nothing else changes for other requests.
      const { handle, named, relay } = yield* setup(twoSeconds)
      const page = yield* relay.connect(navigation)
      const api = yield* relay.connect(head("GET", "application/json"))
      const post = yield* relay.connect(head("POST", "text/html", "Content-Length: 3\r\n") + "a=1")
      yield* advance("1999 millis")
      expect(page.answered).toBeUndefined()
      yield* advance("1 millis")
      expect(page.answered).toMatch(/^HTTP\/1\.1 503 /)
      expect(page.answered).toContain("blog is starting")
      expect(relay.held.map((conn) => conn.id)).toEqual([api.id, post.id])
      expect(named("waiting_page")[0]).toMatchObject({ level: "DEBUG", fields: { method: "GET", waited_ms: 2000 } })
      expect((yield* handle.status).waitingPages).toBe(1)
      yield* advance("5 seconds")
      expect(page.closed).toBe(true) // the client had 5 s to read it
      expect(api.answered).toBeUndefined()
      expect(post.answered).toBeUndefined()
      relay.listening(upstream)
      yield* settle
      expect(relay.relayed.map((conn) => conn.id)).toEqual([api.id, post.id])
      expect(named("waiting_page")).toHaveLength(1)
    }))

  it.scoped("a head that completes later is answered at the next look; a HEAD gets no body", () =>
    Effect.gen(function*() {
      const { relay } = yield* setup(twoSeconds)
      const slow = yield* relay.connect("GET / HTTP/1.1\r\nAccept: text/html\r\n")
      const headOnly = yield* relay.connect(head("HEAD", "text/html"))
      yield* advance("2 seconds")
      expect(slow.answered).toBeUndefined()
      expect(headOnly.answered?.endsWith("\r\n\r\n")).toBe(true)
      slow.sent += "\r\n"
      yield* advance("100 millis")
      expect(slow.answered).toMatch(/^HTTP\/1\.1 503 /)
    }))

  it.scoped("a head still incomplete 2 s after its first look is not looked at again: it waits for the app", () =>
    Effect.gen(function*() {
      const { relay } = yield* setup(twoSeconds)
      const stalled = yield* relay.connect("GET / HTTP/1.1\r\nAccept: text/html\r\n")
      yield* advance("2 seconds")
      const looks = relay.peeks
      yield* advance("1999 millis")
      expect(relay.peeks).toBeGreaterThan(looks) // looked at every 100 ms meanwhile
      yield* advance("1 millis")
      const last = relay.peeks
      stalled.sent += "\r\n" // complete now, but too late for a page
      yield* advance("10 seconds")
      expect(relay.peeks).toBe(last)
      expect(stalled.answered).toBeUndefined()
    }))

  it.scoped("a page's connection is closed when the service ends before its linger (a reload, a shutdown): never left open", () =>
    Effect.gen(function*() {
      // Fault: the linger's close was a delayed effect: interrupted by the service's end, it never ran, and the
      // answered connection stayed open in the relay until its client left.
      const { fiber, relay } = yield* setup(twoSeconds)
      const page = yield* relay.connect(navigation)
      yield* advance("2 seconds")
      expect(page.answered).toMatch(/^HTTP\/1\.1 503 /)
      expect(page.closed).toBeFalsy()
      yield* Fiber.interrupt(fiber)
      expect(page.closed).toBe(true)
    }))

  it.scoped("--waiting-page-file: its text is served, with the service's name", () =>
    Effect.gen(function*() {
      const { relay } = yield* setup({ after: Duration.seconds(1), file: { path: "/x.html", text: "<p>wait for {{service}}</p>" } })
      const page = yield* relay.connect(navigation)
      yield* advance("1 second")
      expect(page.answered?.endsWith("\r\n\r\n<p>wait for blog</p>")).toBe(true)
    }))

  it.scoped("without --waiting-page a navigation waits for the app as before", () =>
    Effect.gen(function*() {
      const { handle, relay } = yield* setup(undefined)
      const page = yield* relay.connect(navigation)
      yield* advance("30 seconds")
      expect(page.answered).toBeUndefined()
      expect((yield* handle.status).waitingPages).toBeUndefined()
      relay.listening(upstream)
      yield* settle
      expect(relay.relayed.map((conn) => conn.id)).toEqual([page.id])
    }))
})
