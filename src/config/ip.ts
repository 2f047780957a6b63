/**
 * IP address forms, as node:net's isIPv4 and isIPv6 tell them (test/unit/ip.test.ts holds the two to the same
 * answers over generated text): a run parses its listeners' hosts with these, so that node:net, some 0.5 MB with
 * Node's streams, is not loaded to check a string (os/lazyNet.ts loads it where a socket needs it). Linear, no
 * backtracking: each part is checked on its own.
 *
 * @internal
 */

/** 0 to 255 in decimal, without a leading zero. */
const octet = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

/** A dotted quad: `192.0.2.1`. */
export const isIPv4 = (text: string): boolean => {
  const parts = text.split(".")
  return parts.length === 4 && parts.every((part) => octet.test(part))
}

const group = /^[0-9a-fA-F]{1,4}$/
/** What may follow `%` (a zone: `fe80::1%eth0`), as node:net allows it. */
const zone = /^[0-9a-zA-Z.:-]+$/

/** Whether `groups` (split at `:`, the last perhaps a dotted quad worth two) are `want` 16-bit groups or fewer. */
const groupsOf = (groups: ReadonlyArray<string>): number | undefined => {
  let count = 0
  for (let i = 0; i < groups.length; i++) {
    const part = groups[i]!
    if (group.test(part)) count += 1
    else if (i === groups.length - 1 && isIPv4(part)) count += 2
    else return undefined
  }
  return count
}

/** Eight 16-bit groups in hex, `::` once for a run of zero groups, the last two perhaps a dotted quad; a zone. */
export const isIPv6 = (text: string): boolean => {
  const percent = text.indexOf("%")
  const address = percent < 0 ? text : text.slice(0, percent)
  if (percent >= 0 && !zone.test(text.slice(percent + 1))) return false
  const halves = address.split("::")
  if (halves.length > 2) return false
  if (halves.length === 1) return groupsOf(address.split(":")) === 8
  const [head, tail] = halves as [string, string]
  const left = head === "" ? [] : head.split(":")
  const right = tail === "" ? [] : tail.split(":")
  if (left.some((part) => !group.test(part))) return false // a dotted quad only at the very end
  const count = groupsOf([...left, ...right])
  return count !== undefined && count <= 7
}
