/**
 * A shard's recent drain rate: items its downstream calls took off the queue
 * per second of *busy* time, as an exponentially weighted moving average
 * updated once per finished batch (never per item). What the queue-full 503's
 * `retry-after` divides the waiting items by (ADR 0015).
 *
 * Busy time, not wall time: the interval a finished call accounts for starts
 * at the previous finish or when the shard last went from nothing in flight
 * to something in flight, whichever is later. An idle hour before a burst
 * therefore does not read as a rate of nearly zero; and when the queue is full
 * (the only time the estimate is used) the shard is busy throughout, so busy
 * time is wall time.
 *
 * Both sums decay with the busy time that passed (half-life HALF_LIFE_MS), so
 * the rate follows a downstream that slows down or recovers within seconds,
 * and calls finishing together (pipelining) weigh by their items rather than
 * by their count: rate = Σ items·w / Σ interval·w.
 */

/** Older calls count half as much after this much busy time. */
const HALF_LIFE_MS = 5_000;

export class DrainRate {
  private items = 0;
  private ms = 0;
  private lastFinish = Number.NEGATIVE_INFINITY;

  /**
   * A call ended at `now`, taking `items` off the shard (0 for a batch that was
   * bisected: its items are still waiting). `busySince` is when the shard last
   * went from no call in flight to one.
   */
  record(items: number, now: number, busySince: number): void {
    const from = this.lastFinish > busySince ? this.lastFinish : busySince;
    const interval = now > from ? now - from : 0;
    this.lastFinish = now;
    const keep = interval === 0 ? 1 : 0.5 ** (interval / HALF_LIFE_MS);
    this.items = this.items * keep + items;
    this.ms = this.ms * keep + interval;
  }

  /** Items per second, or null until a call has been timed. */
  perSecond(): number | null {
    return this.ms > 0 ? (this.items * 1000) / this.ms : null;
  }

  /** Seconds to drain `waiting` items at the recent rate; null while no rate is known. */
  secondsFor(waiting: number): number | null {
    const rate = this.perSecond();
    if (rate === null) return null;
    return rate > 0 ? waiting / rate : Number.POSITIVE_INFINITY;
  }
}
