/**
 * node:net, loaded where soad first makes a socket of it (a control connection, an app's output pipe, the proxy's
 * relay), not when a module that may make one is evaluated: with Node's streams it is some 0.5 MB that a sleeping
 * soad with none of these would keep for good (`npm run bench`, README "Figures").
 *
 * @internal
 */
import { createRequire } from "node:module"
import type * as Net from "node:net"

let loaded: typeof Net | undefined

/** node:net, loaded on first use. */
export const net = (): typeof Net => (loaded ??= createRequire(import.meta.url)("node:net") as typeof Net)
