/**
 * Text bound for the operator's terminal, when an app or a client chose some of it (an app's output, its STATUS=):
 * a carriage return could overwrite a line's `[service]` prefix and forge another service's line, an escape
 * sequence could set the window's title, write the clipboard (OSC 52) or clear the screen. Text output gets its
 * control characters replaced; JSON output keeps the exact text, every control character escaped.
 *
 * @internal
 */
import * as Os from "node:os"

/** A control character other than TAB: C0 (CR and ESC among them), DEL, C1 (U+0080–U+009F). */
const control = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/

/** DEL or C1, which JSON.stringify leaves as they are. */
const rawInJson = /[\u007f-\u009f]/

/** Each control character other than TAB, as a string of one character. */
const controls: ReadonlyArray<string> = Array.from({ length: 0xa0 }, (_, code) => String.fromCharCode(code))
  .filter((char) => control.test(char))

/** DEL and C1, each with its JSON escape. */
const jsonRaw: ReadonlyArray<readonly [string, string]> = Array.from({ length: 0x21 }, (_, i) => {
  const char = String.fromCharCode(0x7f + i)
  return [char, `\\u${(0x7f + i).toString(16).padStart(4, "0")}`] as const
})
const jsonRawChars = jsonRaw.map(([char]) => char)

/**
 * Whether `text` holds one of `chars` (all matched by `pattern`, one character class). Under soad's --lite-mode a
 * pattern costs about 5 ns a character and V8's `includes` under 0.1 ns (measured): a long text is searched
 * once for each character, a short one once by the pattern.
 */
const holds = (text: string, pattern: RegExp, chars: ReadonlyArray<string>): boolean =>
  text.length <= 1024 ? pattern.test(text) : chars.some((char) => text.includes(char))

/** Each UTF-16 code unit below U+00A0 as a terminal gets it: a control character other than TAB is U+FFFD. */
const shown = Uint16Array.from({ length: 0xa0 }, (_, unit) => control.test(String.fromCharCode(unit)) ? 0xfffd : unit)

/** Whether this machine reads a Uint16Array big-endian (the UTF-16 below is little-endian: swapped around the pass). */
const bigEndian = Os.endianness() === "BE"

/**
 * `text` with each control character other than TAB replaced by U+FFFD, for a line on a terminal. Nearly every
 * line has none and is returned as it is after one search. Else one pass over its UTF-16 code units, about 33 ns a
 * unit under soad's --lite-mode (measured: V8's split and join per control character cost twice that on a line
 * full of them, a regular expression's replace four times): a 16 KiB line of control characters costs about 0.5 ms
 * (`BENCH_ONLY=parsers npm run bench`).
 */
export const printable = (text: string): string => {
  if (!holds(text, control, controls)) return text
  const encoded = Buffer.from(text, "utf16le")
  const bytes = encoded.byteOffset % 2 === 0 ? encoded : Buffer.from(encoded) // a Uint16Array starts at an even byte
  if (bigEndian) bytes.swap16()
  const units = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2)
  const length = units.length
  for (let i = 0; i < length; i++) {
    const unit = units[i]!
    if (unit < 0xa0) units[i] = shown[unit]!
  }
  if (bigEndian) bytes.swap16()
  return bytes.toString("utf16le")
}

/**
 * JSON.stringify for a line that may reach a terminal: the exact text, with DEL and C1 escaped too (JSON.stringify
 * escapes C0 only, and a terminal may take U+009B for CSI).
 */
export const stringify = (value: unknown, space?: number): string => {
  let out = JSON.stringify(value, null, space)
  if (!holds(out, rawInJson, jsonRawChars)) return out
  for (const [char, escaped] of jsonRaw) if (out.includes(char)) out = out.split(char).join(escaped)
  return out
}
