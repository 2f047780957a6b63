/**
 * Text bound for the operator's terminal, when an app or a client chose some of it (an app's output, its STATUS=):
 * a carriage return could overwrite a line's `[service]` prefix and forge another service's line, an escape
 * sequence could set the window's title, write the clipboard (OSC 52) or clear the screen. Text output gets its
 * control characters replaced; JSON output keeps the exact text, every control character escaped.
 *
 * @internal
 */

/** A control character other than TAB: C0 (CR and ESC among them), DEL, C1 (U+0080–U+009F). */
const control = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/

/** Each control character other than TAB and NUL, as a string of one character. */
const controls: ReadonlyArray<string> = Array.from({ length: 0xa0 }, (_, code) => String.fromCharCode(code))
  .filter((char) => char !== "\t" && char !== "\u0000" && control.test(char))

/** DEL and C1, which JSON.stringify leaves as they are, each with its JSON escape. */
const jsonRaw: ReadonlyArray<readonly [string, string]> = Array.from({ length: 0x21 }, (_, i) => {
  const char = String.fromCharCode(0x7f + i)
  return [char, `\\u${(0x7f + i).toString(16).padStart(4, "0")}`] as const
})

/**
 * `text` with each control character other than TAB replaced by U+FFFD, for a line on a terminal. V8's split and
 * join replace one character throughout at native speed, where a loop of ours would cost about 60 ns a character
 * under soad's --lite-mode (measured): each control character present becomes NUL, then each NUL U+FFFD. A text
 * without one (nearly every line) is returned as it is after one search.
 */
export const printable = (text: string): string => {
  if (!control.test(text)) return text
  let out = text
  for (const char of controls) if (out.includes(char)) out = out.split(char).join("\u0000")
  return out.split("\u0000").join("\ufffd")
}

/**
 * JSON.stringify for a line that may reach a terminal: the exact text, with DEL and C1 escaped too (JSON.stringify
 * escapes C0 only, and a terminal may take U+009B for CSI).
 */
export const stringify = (value: unknown, space?: number): string => {
  let out = JSON.stringify(value, null, space)
  if (!/[\u007f-\u009f]/.test(out)) return out
  for (const [char, escaped] of jsonRaw) if (out.includes(char)) out = out.split(char).join(escaped)
  return out
}
