/**
 * Signals by name or number, as `-S` takes them (`TERM`, `SIGTERM`, `sigterm`, `15`).
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Os from "node:os"

/** A signal this platform knows: its name (`SIGTERM`) and number. */
export interface Signal {
  readonly name: NodeJS.Signals
  readonly number: number
}

const table = Os.constants.signals as Readonly<Record<NodeJS.Signals, number>>

/** The signal with this number, if the platform has one. */
export const fromNumber = (n: number): Signal | undefined => {
  for (const [name, number] of Object.entries(table)) {
    if (number === n) return { name: name as NodeJS.Signals, number }
  }
  return undefined
}

/** Parses `TERM`, `SIGTERM` (any case) or `15`. */
export const parse = (input: string): Either.Either<Signal, string> => {
  const text = input.trim()
  if (/^\d+$/.test(text)) {
    const signal = fromNumber(Number(text))
    return signal !== undefined ? Either.right(signal) : Either.left(`unknown signal number ${text}`)
  }
  const upper = text.toUpperCase()
  const name = (upper.startsWith("SIG") ? upper : `SIG${upper}`) as NodeJS.Signals
  const number = table[name]
  if (number === undefined) {
    return Either.left(`unknown signal '${input}': use a name such as TERM, INT, QUIT, HUP or a number such as 15`)
  }
  return Either.right({ name, number })
}

/** SIGTERM, the default shutdown signal. */
export const SIGTERM: Signal = { name: "SIGTERM", number: table.SIGTERM }

/** SIGKILL, the last resort. */
export const SIGKILL: Signal = { name: "SIGKILL", number: table.SIGKILL }
