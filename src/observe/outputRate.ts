/**
 * The rate of one service's app output, as a pure state machine over the Clock's milliseconds: how many lines soad
 * may still take in the current second, when pipes paused over the rate may be read again, and the episode of
 * pauses a flooding app is in, so that soad says so once when it begins and once when it is over, not once a second.
 * observe/appLogs.ts does the reading, pausing and saying.
 *
 * @internal
 */

/** The window the rate is counted over. */
export const windowMs = 1000

/**
 * How long a service's output must go without a pause for its episode to be over (and summed up in one line):
 * an app that writes a burst every few seconds (a batch job's report, `yes | head`) stays in one episode.
 */
export const calmMs = 5000

/** What an episode of pauses came to, said once it is over. */
export interface Summary {
  /** From the first pause to the end of the last one (ms). */
  readonly lastedMs: number
  /** How long the pipes were paused in it (ms). */
  readonly pausedMs: number
  /** How many times they were paused. */
  readonly pauses: number
  /** Lines taken during it. */
  readonly lines: number
}

interface Episode {
  readonly since: number
  pausedMs: number
  pauses: number
  lines: number
  /** When the last pause began or ended. */
  last: number
}

/** One service's output rate: at most `rate` lines per `windowMs`. */
export class OutputRate {
  private window = Number.NEGATIVE_INFINITY
  private taken = 0
  private pausedSince: number | undefined = undefined
  private episode: Episode | undefined = undefined

  constructor(readonly rate: number) {}

  /** The lines that may still be taken now; 0: pause until `resumeAt`. A second over, the next one begins. */
  allowance(now: number): number {
    if (now >= this.window + windowMs) {
      this.window = now
      this.taken = 0
    }
    return Math.max(0, this.rate - this.taken)
  }

  /** Counts lines taken. */
  take(lines: number): void {
    this.taken += lines
    if (this.episode !== undefined) this.episode.lines += lines
  }

  /** Whether the service's pipes are paused now. */
  get paused(): boolean {
    return this.pausedSince !== undefined
  }

  /** When paused pipes may be read again: the end of the current second. */
  get resumeAt(): number {
    return this.window + windowMs
  }

  /** The pipes are paused now (more than one may be paused at once); true if this begins an episode (say so). */
  pause(now: number): boolean {
    if (this.pausedSince !== undefined) return false
    this.pausedSince = now
    const begins = this.episode === undefined
    if (this.episode === undefined) this.episode = { since: now, pausedMs: 0, pauses: 0, lines: 0, last: now }
    this.episode.pauses += 1
    this.episode.last = now
    return begins
  }

  /** The pipes are read again: how long they were paused (ms; 0 if they were not). */
  resume(now: number): number {
    if (this.pausedSince === undefined) return 0
    const pausedMs = Math.max(0, now - this.pausedSince)
    this.pausedSince = undefined
    if (this.episode !== undefined) {
      this.episode.pausedMs += pausedMs
      this.episode.last = now
    }
    return pausedMs
  }

  /** When the episode may be over, if nothing pauses the pipes again; undefined if there is none. */
  get calmAt(): number | undefined {
    if (this.episode === undefined) return undefined
    return (this.pausedSince === undefined ? this.episode.last : this.resumeAt) + calmMs
  }

  /** The episode's summary if it is over now (no pause for `calmMs`), ending it; otherwise undefined. */
  settle(now: number): Summary | undefined {
    const episode = this.episode
    const calmAt = this.calmAt
    if (episode === undefined || calmAt === undefined || this.pausedSince !== undefined || now < calmAt) return undefined
    this.episode = undefined
    return { lastedMs: episode.last - episode.since, pausedMs: episode.pausedMs, pauses: episode.pauses, lines: episode.lines }
  }
}

/**
 * Where to cut `chunk` so that it holds at most `lines` lines: just after its `lines`-th newline (what follows
 * waits), or its length if it has fewer. Linear: one memchr per line taken.
 */
export const cutAfter = (chunk: Uint8Array, lines: number): number => {
  let at = 0
  for (let n = 0; n < lines; n++) {
    const newline = chunk.indexOf(10, at)
    if (newline < 0) return chunk.length
    at = newline + 1
  }
  return at
}
