#!/usr/bin/env node
/**
 * The `soad` command as an ES module: what `soad` runs when there is no startup snapshot for the node that runs it
 * (cli/snapshot.ts). The full command tree (cli/main.ts) is a chunk of its own that only a run loads.
 */
import * as Entry from "./cli/entry.js"

await Entry.run(() => import("./cli/main.js"))
