/**
 * The shard's deadline timer: one timer per shard, armed for the earliest item
 * deadline it knows of, instead of a timer per item. With the default 10 s
 * deadline it fires about once per deadline period and finds nothing to do,
 * whatever the request rate.
 *
 * Each sweep scans the whole shard (ShardQueue.sweep), so sweeps are at least
 * SWEEP_INTERVAL_MS apart: with scattered x-timeout-ms deadlines a 504 may
 * come that much late, and the scans stay bounded. The timer is unref'd: an
 * item's deadline never keeps the process alive on its own.
 */

const SWEEP_INTERVAL_MS = 5;

export class DeadlineTimer {
  /** The deadline the timer is armed for; Infinity when it is not armed. */
  at = Infinity;
  private timer: NodeJS.Timeout | null = null;
  private lastSweep = -Infinity;
  private readonly now: () => number;
  private readonly sweep: () => void;

  constructor(now: () => number, sweep: () => void) {
    this.now = now;
    this.sweep = sweep;
  }

  /** Arms the timer for `at` (earlier than the one armed, or after a sweep). */
  arm(at: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.at = at;
    const now = this.now();
    const delay = Math.max(at - now, this.lastSweep + SWEEP_INTERVAL_MS - now, 0);
    this.timer = setTimeout(this.sweep, delay);
    this.timer.unref();
  }

  /** A sweep starts now (from the timer or called directly): the timer is spent. */
  sweeping(now: number): void {
    this.stop();
    this.lastSweep = now;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.at = Infinity;
  }
}
