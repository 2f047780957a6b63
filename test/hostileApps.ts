/**
 * Services for the status page's tests (integration and browser): a plain app, an app whose STATUS= is hostile
 * markup, and a command that cannot start, whose last error quotes hostile markup.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { appFixture, root } from "./harness.js"

/** A config with: blog (a plain app, stops after 0.3 s idle), shop (a hostile STATUS=), broken (cannot start). */
export const hostileConfig = (d: string, shopPort: number): string => {
  const config = Path.join(d, "apps.toml")
  Fs.writeFileSync(config, [
    `[services.blog]`,
    `listen = ["${d}/blog.sock"]`,
    `command = [${JSON.stringify(process.execPath)}, ${JSON.stringify(appFixture)}]`,
    `time-until-stop = "0.3s"`,
    `[services.shop]`,
    `listen = ["127.0.0.1:${shopPort}"]`,
    `command = ["python3", ${JSON.stringify(Path.join(root, "test", "fixtures", "hostile-status.py"))}]`,
    `ready = "notify"`,
    `[services.broken]`,
    `listen = ["${d}/broken.sock"]`,
    `command = ["/nonexistent/\\"><img src=x onerror=alert(1)>"]`,
    ""
  ].join("\n"))
  return config
}

/** Connects to a UNIX socket and closes at once: a start, with nothing to wait for. */
export const poke = (path: string): Promise<void> =>
  new Promise((resolve) => {
    const socket = Net.connect(path)
    socket.on("error", () => resolve())
    socket.on("connect", () => {
      socket.destroy()
      resolve()
    })
  })
