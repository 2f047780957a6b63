/**
 * Running out (of file descriptors, most often): soad backs off and tries again by itself, and says so once per
 * episode, when it begins and when it ends, never once per try. Every mode's "out of fds" goes through here
 * (accept mode's accept and instance starts, proxy mode's relayer).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { event, type Fields } from "../Logging.js"

/** An episode of running out: said when it begins (warn) and when it ends (info), once each. */
export interface Episodes {
  /** A try failed: said if no episode is under way. */
  readonly began: (detail: string, fields?: Fields) => Effect.Effect<void>
  /** A try worked: said if an episode was under way. */
  readonly ended: Effect.Effect<void>
}

/** Episodes said as `beganEvent` (its message from the failure's detail) and `endedEvent`. */
export const episodes = (
  beganEvent: string,
  beganMessage: (detail: string) => string,
  endedEvent: string,
  endedMessage: string
): Episodes => {
  let under = false
  return {
    began: (detail, fields = {}) =>
      Effect.suspend(() => {
        if (under) return Effect.void
        under = true
        return event("warn", beganEvent, beganMessage(detail), { code: detail, ...fields })
      }),
    ended: Effect.suspend(() => {
      if (!under) return Effect.void
      under = false
      return event("info", endedEvent, endedMessage)
    })
  }
}
