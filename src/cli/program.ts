/**
 * The full way of the `soad` command as one CommonJS file (dist/program.cjs, built by cli/bundle.mjs), which bin.ts
 * loads with V8's code cache (cli/codeCache.ts) for a run and what the light path leaves.
 *
 * @internal
 */
export { main } from "./main.js"
