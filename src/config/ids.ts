/**
 * User and group references as a user writes them (a name or a number), checked before anything looks them up:
 * ids are whole numbers from 0 to 4294967294. 4294967295 is (uid_t)-1, which the kernel reads as "no change", and
 * JavaScript numbers such as -1, 1.5 or 1e10 would otherwise wrap or truncate on their way to C.
 *
 * @internal
 */
import * as Either from "effect/Either"

/** The largest id soad accepts. */
export const maxId = 4_294_967_294

/** Looks like a number (so it is no name), but is not a whole number in range: "-1", "1.5", "1e10", "0x10". */
const numberLike = /^[-+.\d][-+.\dA-Za-z]*$/

/** A valid id, a name to look up, or what is wrong (to follow "expected a user name or a uid, found …"). */
export const parse = (value: string | number): Either.Either<number | string, string> => {
  if (typeof value === "number") {
    return Number.isInteger(value) && value >= 0 && value <= maxId
      ? Either.right(value)
      : Either.left(`ids are whole numbers from 0 to ${maxId}`)
  }
  const text = value.trim()
  if (/^\d+$/.test(text)) {
    const id = Number(text)
    return id <= maxId ? Either.right(id) : Either.left(`ids are whole numbers from 0 to ${maxId}`)
  }
  if (text === "" || numberLike.test(text)) return Either.left(`ids are whole numbers from 0 to ${maxId}`)
  return Either.right(text)
}
