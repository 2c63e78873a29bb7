/**
 * A shard's recent drain rate, for the expected wait of a new item (the
 * MAX_QUEUE_WAIT_MS refusal, ADR 0020) and the 503's `retry-after`
 * (ADR 0015): how many downstream calls it completes per second of *busy*
 * time, as an exponentially weighted moving average updated once per
 * finished call (never per item). Items drain at that many calls a second
 * times the items each waiting batch holds, so the time to drain the waiting
 * items is the number of waiting batches divided by the call rate.
 *
 * Calls rather than items: what the shard sends next is what waits now (full
 * batches, once a queue is full), not what its last calls happened to carry.
 * Right after a burst began, the first call may have left with the 3 items of
 * one window while 60 items wait in batches of 10; an items-per-second
 * figure would then say 20 s instead of 6.
 *
 * Busy time, not wall time: the interval a finished call accounts for starts
 * at the previous finish or when the shard last went from holding nothing (no
 * item waiting, no call in flight) to holding work, whichever is later. An
 * idle hour before a burst therefore does not read as a rate of nearly zero;
 * and time an item spent waiting for a call slot (which the shards share in
 * adaptive mode, ADR 0018) counts, so a shard that gets a quarter of the
 * slots drains at a quarter of the rate. Calls in flight together (pipelining) each count: 8 calls of 1 s in
 * flight at once drain 8 batches a second.
 *
 * Both sums decay with the busy time that passed (half-life HALF_LIFE_MS), so
 * the rate follows a downstream that slows down or recovers within seconds:
 * rate = Σ calls·w / Σ interval·w.
 */

/**
 * Older calls count half as much after this much busy time: short enough that
 * the estimate follows the onset of a surge (when calls turn from quick small
 * batches into slow full ones) within a second or two, long enough to span a
 * few calls of a slow downstream. It was 5 s while only retry-after read it.
 */
const HALF_LIFE_MS = 1_000;
/** An idle spell this long makes the rate measured before it unknown. */
const STALE_AFTER_MS = 1_000;

export class DrainRate {
  /** Busy ms per call recently, kept for the per-item check (one multiplication); 0 until a call has been timed. */
  msPerCall = 0;
  private calls = 0;
  private ms = 0;
  private lastFinish = Number.NEGATIVE_INFINITY;

  /** A call ended at `now`; `busySince` is when the shard last went from holding nothing to holding work. */
  record(now: number, busySince: number): void {
    // Idle for longer than STALE_AFTER_MS since the last finish: what was measured before says nothing now.
    if (busySince - this.lastFinish > STALE_AFTER_MS) {
      this.calls = 0;
      this.ms = 0;
    }
    const from = this.lastFinish > busySince ? this.lastFinish : busySince;
    const interval = now > from ? now - from : 0;
    this.lastFinish = now;
    const keep = interval === 0 ? 1 : 0.5 ** (interval / HALF_LIFE_MS);
    this.calls = this.calls * keep + 1;
    this.ms = this.ms * keep + interval;
    this.msPerCall = this.ms / this.calls;
  }

  /**
   * Busy ms per call, or 0 (unknown) when it was learned before an idle spell
   * of more than STALE_AFTER_MS: the shard's current busy spell began at
   * `busySince`, and no call has finished in it yet. A rate learned while calls
   * timed out says nothing of a downstream that may have recovered since; one
   * learned in this busy spell, however slow, is the downstream now.
   */
  freshMsPerCall(busySince: number): number {
    return busySince - this.lastFinish > STALE_AFTER_MS ? 0 : this.msPerCall;
  }
}
