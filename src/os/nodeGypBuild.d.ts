/** node-gyp-build ships no types: what soad uses of it (os/native.ts). */
declare module "node-gyp-build" {
  interface NodeGypBuild {
    /** Loads the binding found under `dir`: a prebuild for this platform first, else a local build. */
    (dir: string): unknown
    /** The path of that binding, without loading it. */
    readonly resolve: (dir: string) => string
  }
  const load: NodeGypBuild
  export default load
}
