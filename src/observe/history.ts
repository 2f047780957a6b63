/**
 * The history behind the status page's charts: apps started and RAM saved, summed over every service, in a ring of
 * fixed buckets (10 minutes each, the last 24 hours: two arrays of 144 numbers, about 2.3 KB whatever the number of
 * services). Nothing runs on a timer: each event and each read first brings the ring up to the time it is given
 * (buckets that went by are cleared, the RAM saved since the last event is added to the buckets it fell in), so an
 * idle soad does no work for it.
 *
 * RAM saved is integrated exactly as internal/saving.ts counts it: while a stopped app's peak is known, each
 * stopped millisecond saves that peak. The sum of those peaks (`saving`) only changes when an app starts or stops
 * (or a service goes away), so between events the saving grows linearly and needs no sampling.
 *
 * @internal
 */

/** The shape of a history: bucket length and how many are kept. */
export interface Options {
  readonly bucketMs: number
  readonly buckets: number
}

/** 10-minute buckets over 24 hours: a bar every 10 minutes is readable at 144 bars, and a night fits. */
export const defaults: Options = { bucketMs: 10 * 60_000, buckets: 144 }

/** One bucket as the charts read it. */
export interface Bucket {
  /** When it begins (Clock ms, a multiple of the bucket length). */
  readonly start: number
  /** Apps started in it (accept mode: instances). */
  readonly starts: number
  /** The RAM stopped apps saved in it, on average over the part of it soad has seen (bytes); 0 where unseen. */
  readonly savedBytes: number
  /** How much of it soad has seen (ms): 0 before the history began and after `at`. */
  readonly seenMs: number
}

/** The history at one time: the oldest bucket first, the current (partial) one last. */
export interface Snapshot {
  readonly bucketMs: number
  readonly at: number
  readonly buckets: ReadonlyArray<Bucket>
  /** The bytes stopped apps do not use now: the sum of their peaks. */
  readonly savingNow: number
}

/** What changed: apps started, and by how much the stopped apps' peaks changed (bytes; negative when one starts). */
export interface Change {
  readonly starts?: number
  readonly saving?: number
}

/** A bounded, aggregate history (mutable; one per soad, touched from one thread). */
export interface History {
  /** Records a change at `at` (Clock ms). */
  readonly record: (at: number, change: Change) => void
  /** The buckets up to `at` (Clock ms). */
  readonly snapshot: (at: number) => Snapshot
}

/** A history that begins at `origin` (Clock ms). */
export const make = (origin: number, options: Options = defaults): History => {
  const { bucketMs, buckets } = options
  const starts = new Float64Array(buckets)
  const byteMs = new Float64Array(buckets)
  const slot = (bucket: number) => ((bucket % buckets) + buckets) % buckets
  /** The newest bucket the ring holds (its number: Clock ms / bucketMs, rounded down). */
  let newest = Math.floor(origin / bucketMs)
  /** Up to when the saving has been added to the buckets; never moves back. */
  let since = origin
  /** The bytes saved per ms now (the sum of the stopped apps' peaks). */
  let saving = 0

  /** Brings the ring up to `at`: clears the buckets that went by, adds the saving since the last call. */
  const advance = (at: number): number => {
    // A clock that steps back (a wall clock set back): the time stays where it was, nothing is undone.
    const to = Math.max(at, since)
    const last = Math.floor(to / bucketMs)
    // At most one turn of the ring: a soad idle for days clears it once.
    for (let bucket = Math.max(newest + 1, last - buckets + 1); bucket <= last; bucket++) {
      starts[slot(bucket)] = 0
      byteMs[slot(bucket)] = 0
    }
    newest = Math.max(newest, last)
    if (saving > 0) {
      for (let bucket = Math.max(Math.floor(since / bucketMs), last - buckets + 1); bucket <= last; bucket++) {
        const overlap = Math.min(to, (bucket + 1) * bucketMs) - Math.max(since, bucket * bucketMs)
        if (overlap > 0) byteMs[slot(bucket)] += saving * overlap
      }
    }
    since = to
    return to
  }

  return {
    record: (at, change) => {
      advance(at)
      if (change.starts !== undefined) starts[slot(newest)] += change.starts
      // Rounding cannot leave a negative saving behind (peaks are whole bytes, but be safe).
      if (change.saving !== undefined) saving = Math.max(0, saving + change.saving)
    },
    snapshot: (at) => {
      const to = advance(at)
      const out: Array<Bucket> = []
      for (let bucket = newest - buckets + 1; bucket <= newest; bucket++) {
        const start = bucket * bucketMs
        const seenMs = Math.max(0, Math.min(to, start + bucketMs) - Math.max(origin, start))
        const i = slot(bucket)
        out.push({ start, starts: starts[i]!, savedBytes: seenMs > 0 ? byteMs[i]! / seenMs : 0, seenMs })
      }
      return { bucketMs, at: to, buckets: out, savingNow: saving }
    }
  }
}
