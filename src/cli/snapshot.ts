/**
 * The `soad` command as a V8 startup snapshot (cli/snapshot.mjs makes it; the `soad` script runs it when
 * SOAD_SNAPSHOT=1 asks for it: it costs memory, src/soad.sh says how much). Making it evaluates every module of the
 * program, so a start restores them instead of compiling and evaluating the bundle: half of soad's start-up. What
 * module evaluation reads of its process (the environment, the time, the user) would be the build's: the build
 * refuses a module that reads any of it (cli/snapshotAudit.mjs), and what Effect itself makes then (its clock's
 * origin, its random seed) soad makes again for each run (os/runDefaults.ts, provided in cli/main.ts).
 *
 * The `soad` script runs `node --snapshot-blob snapshot.blob …/bin.js ARGS`, so process.argv is what bin.js sees.
 *
 * @internal
 */
import * as Fs from "node:fs"
import * as V8 from "node:v8"
import { pathToFileURL } from "node:url"
import * as Entry from "./entry.js"
import * as Main from "./main.js"

/** Where bin.js is, as its own import.meta.url would say (os/native.ts finds the addon from it): its real path. */
declare global {
  // eslint-disable-next-line no-var
  var SOAD_IMPORT_META_URL: string | undefined
}

V8.startupSnapshot.setDeserializeMainFunction(() => {
  globalThis.SOAD_IMPORT_META_URL = pathToFileURL(Fs.realpathSync(process.argv[1] ?? ".")).href
  void Entry.run(() => Promise.resolve(Main))
})
