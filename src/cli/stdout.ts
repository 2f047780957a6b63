/**
 * soad's stdout, made when first asked for: Node makes process.stdout when it is first read, and for a pipe or a
 * terminal that loads node:net and its streams, which a run (it writes to stderr alone) never needs.
 *
 * @internal
 */

let guarded = false

/**
 * process.stdout, with its write errors made harmless: `soad status | head -1`, a reader that goes away, ends the
 * output instead of ending soad with an unhandled EPIPE.
 */
export const stdout = (): NodeJS.WriteStream => {
  if (!guarded) {
    guarded = true
    process.stdout.on("error", () => {})
  }
  return process.stdout
}
