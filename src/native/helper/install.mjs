// Copies soad's helper programs (executable targets of binding.gyp, named soad-*) from build/Release into this
// platform's prebuilds folder, beside the addon that prebuildify put there; node-gyp-build finds the addon and
// soad finds the helpers next to it. Run from src/native after prebuildify.
import * as Fs from "node:fs"
import * as Path from "node:path"

const from = Path.join("build", "Release")
const to = Path.join("prebuilds", `${process.platform}-${process.arch}`)
Fs.mkdirSync(to, { recursive: true })
for (const name of Fs.readdirSync(from)) {
  if (!name.startsWith("soad-")) continue
  const source = Path.join(from, name)
  if (!Fs.statSync(source).isFile()) continue
  Fs.copyFileSync(source, Path.join(to, name))
  Fs.chmodSync(Path.join(to, name), 0o755)
}
