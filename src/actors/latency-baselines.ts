/**
 * What a downstream call of each size takes without queueing, recently: the
 * baseline the call limit (call-limit.ts, ADR 0018) reads each call's latency
 * against.
 *
 * The service time depends on the batch: a call of 100 items may cost twice
 * one of 5. The sizes 1..BATCH_MAX_SIZE fall into SIZE_BUCKETS ranges, each
 * with the minimum latency of the last 5-10 s (two slots of BASELINE_SLOT_MS:
 * a downstream that got slower for good is learned again within 10 s). A
 * bucket's baseline is the lowest of its minimum, every larger bucket's, and
 * every smaller bucket's scaled up by the sizes (a smaller batch never costs
 * more, nor a bigger one more per item): a bucket first seen while calls
 * queued would otherwise keep a queued latency.
 */

/** Sizes 1..BATCH_MAX_SIZE fall into this many equal ranges, each with its own baseline. */
export const SIZE_BUCKETS = 16;
/** Baselines (and the call limit's floor) are the minimum over the current slot and the one before. */
export const BASELINE_SLOT_MS = 5_000;

export class LatencyBaselines {
  private readonly bucketWidth: number;
  private readonly current = new Float64Array(SIZE_BUCKETS).fill(Infinity);
  private readonly previous = new Float64Array(SIZE_BUCKETS).fill(Infinity);
  private slotStart = Number.NEGATIVE_INFINITY;

  constructor(batchMaxSize: number) {
    this.bucketWidth = Math.max(1, batchMaxSize) / SIZE_BUCKETS;
  }

  /** Starts a new slot if the current one is over at `now`; true when it did (the caller's own minima roll with it). */
  roll(now: number): boolean {
    if (now - this.slotStart < BASELINE_SLOT_MS) return false;
    this.previous.set(this.current);
    this.current.fill(Infinity);
    this.slotStart = now;
    return true;
  }

  /** A call of `items` items took `latencyMs`; returns its size bucket. */
  record(latencyMs: number, items: number): number {
    const bucket = Math.min(SIZE_BUCKETS - 1, Math.floor((items - 1) / this.bucketWidth));
    if (latencyMs < this.current[bucket]) this.current[bucket] = latencyMs;
    return bucket;
  }

  /**
   * The best recent latency for calls of `bucket`'s sizes: its own minimum,
   * a larger bucket's if lower, or a smaller bucket's scaled up by the sizes
   * if lower still. A call costs a part per call and a part per item, so its
   * latency per item never rises with its size: a bucket first seen while
   * calls already queued (a capacity drop makes batches grow into sizes never
   * sent before) is bounded by what smaller batches took when they did not.
   */
  of(bucket: number): number {
    let best = Infinity;
    for (let b = 0; b < SIZE_BUCKETS; b++) {
      const seen = Math.min(this.current[b], this.previous[b]);
      // Bucket mids are proportional to index + 0.5 (equal widths from size 1).
      const bound = b >= bucket ? seen : (seen * (bucket + 0.5)) / (b + 0.5);
      if (bound < best) best = bound;
    }
    return best;
  }
}
