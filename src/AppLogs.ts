/**
 * Where each app's stdout and stderr go. `layerInherit` (in `SoadContext.defaults`) leaves each app soad's own and
 * keeps no lines; `layer` is what the `soad` command runs with: each line attributed to its service on soad's
 * stderr (or the journal) and the latest kept for `soad logs` (the implementation: observe/appLogs.ts).
 *
 * @since 0.1.0
 */
export {
  /** The service: where an app's output goes, and the lines kept of each service. */
  AppLogs,
  /** Nothing captured: the apps inherit soad's stdout and stderr; `soad logs` is refused. */
  inherit,
  /** The apps' output on soad's stderr in a format (the journal under systemd), the latest lines kept. */
  layer,
  /** `inherit` as a layer. */
  layerInherit,
  /** A line of an app's output, as `tail` and `follow` give it. */
  type LogLine,
  /** Where one app's output goes: the pipes soad reads. */
  type Output
} from "./observe/appLogs.js"
