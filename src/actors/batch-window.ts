/**
 * The batch window of one shard: how long an open batch waits for more items
 * after its first one (the time trigger). Decision and measurements: ADR 0016.
 *
 * - `fixed` (BATCH_WINDOW_MODE default): always BATCH_MAX_WAIT_MS.
 * - `adaptive`: within [BATCH_MIN_WAIT_MS, BATCH_MAX_WAIT_MS], driven by the
 *   shard's calls in flight, the downstream's own pressure signal (Little's
 *   law: a slower downstream holds each call longer and fills the slots):
 *
 *     pressure  calls in flight reach MAX_INFLIGHT_BATCHES, or a sealed batch
 *               waits for a slot: at once to the maximum, window ← max
 *     room      during a whole period (WINDOW_PERIOD_MS) the calls in flight
 *               stayed under MAX_INFLIGHT_BATCHES / 2 and no sealed batch
 *               waited: shrink by one step at the end of that period,
 *                 window ← max(min, window − step)
 *     otherwise (calls in flight reached half the slots in the period): grow
 *               by one step at its end, window ← min(max, window + step).
 *
 *   step = (max − min) / WINDOW_STEPS. Fast up, slow down: a slot-starved
 *   downstream costs the most (every small batch sealed then is one more
 *   call queued behind the others), while a window one step too long costs
 *   callers a fraction of a millisecond. Between half the slots and all of
 *   them the window creeps up rather than holding, so it settles where calls
 *   in flight hover around half the slots, and a quiet moment at a
 *   bottleneck does not leave it short until the slots fill again (the
 *   simulation in bench/micro/window-sim.ts compares both). The window
 *   starts at the maximum.
 *
 * The controller is told about state changes only, never about items: the
 * end of each dispatch round and each finished call (calls in flight change
 * nowhere else), and it is read when a batch opens and when /metrics is
 * scraped. Periods that ended with no event in them are settled at the next
 * read; no timer runs. A new window applies to batches opened after it: an
 * open batch keeps the deadline it got when it opened (Batch.closesAt).
 */

export type WindowMode = 'fixed' | 'adaptive';
export const WINDOW_MODES: readonly WindowMode[] = ['fixed', 'adaptive'];

/** Length of one observation period: at most one step, down or up, at the end of each (ADR 0016). */
export const WINDOW_PERIOD_MS = 50;
/** The range [min, max] is crossed in this many steps. */
export const WINDOW_STEPS = 10;

export interface BatchWindowOptions {
  readonly mode: WindowMode;
  /** BATCH_MIN_WAIT_MS: lower bound of the adaptive window. */
  readonly minMs: number;
  /** BATCH_MAX_WAIT_MS: the fixed window, and the upper bound of the adaptive one. */
  readonly maxMs: number;
  /** MAX_INFLIGHT_BATCHES of the shard. */
  readonly maxInflight: number;
  /** Monotonic clock in ms; injectable for tests with fake timers. */
  readonly now: () => number;
  /** Tuning, for the simulation that chose the defaults (bench/micro/window-sim.ts). */
  readonly periodMs?: number;
  readonly steps?: number;
  /** Between half the slots and all of them: creep up (default) or hold. */
  readonly band?: 'hold' | 'grow';
  /** Under pressure: straight to the maximum (default) or double. */
  readonly increase?: 'max' | 'double';
}

export class BatchWindow {
  readonly mode: WindowMode;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly maxInflight: number;
  private readonly step: number;
  private readonly periodMs: number;
  private readonly band: 'hold' | 'grow';
  private readonly increase: 'max' | 'double';
  private readonly now: () => number;
  private ms: number;
  private periodStart: number;
  /** Most calls in flight seen in the period under way. */
  private peak = 0;
  /** Pressure was seen in the period under way. */
  private pressed = false;
  /** The shard's state after the last event: it holds until the next one. */
  private inflight = 0;
  private readyBatches = 0;

  constructor(options: BatchWindowOptions) {
    this.mode = options.mode;
    this.minMs = Math.min(options.minMs, options.maxMs);
    this.maxMs = options.maxMs;
    this.maxInflight = options.maxInflight;
    this.step = (this.maxMs - this.minMs) / (options.steps ?? WINDOW_STEPS);
    this.periodMs = options.periodMs ?? WINDOW_PERIOD_MS;
    this.band = options.band ?? 'grow';
    this.increase = options.increase ?? 'max';
    this.now = options.now;
    this.ms = options.maxMs;
    this.periodStart = this.now();
  }

  /** The window a batch opened now gets, in ms. */
  get currentMs(): number {
    if (this.mode === 'adaptive') this.settle(this.now());
    return this.ms;
  }

  /**
   * The end of a dispatch round: `inflight` calls are in flight and
   * `readyBatches` sealed batches still wait for a slot.
   */
  dispatched(inflight: number, readyBatches: number): void {
    if (this.mode !== 'adaptive') return;
    this.settle(this.now());
    this.inflight = inflight;
    this.readyBatches = readyBatches;
    if (inflight > this.peak) this.peak = inflight;
    if (inflight >= this.maxInflight || readyBatches > 0) {
      this.pressed = true;
      this.ms = this.increase === 'max' ? this.maxMs : Math.min(this.maxMs, micros(Math.max(this.ms * 2, this.ms + this.step)));
    }
  }

  /** A call ended: `inflight` calls are still in flight, `readyBatches` sealed batches wait. */
  finished(inflight: number, readyBatches: number): void {
    if (this.mode !== 'adaptive') return;
    this.settle(this.now());
    this.inflight = inflight;
    this.readyBatches = readyBatches;
  }

  /** Closes the periods that have ended by `now`: one step down for each that had room, one up for each that had not. */
  private settle(now: number): void {
    const periods = Math.floor((now - this.periodStart) / this.periodMs);
    if (periods <= 0) return;
    const grow = this.band === 'grow' ? -1 : 0;
    let steps = this.hadRoom(this.peak, this.pressed) ? 1 : grow;
    // Periods with no event in them: the state stayed what it was after the last one.
    if (periods > 1) steps += (periods - 1) * (this.hadRoom(this.inflight, this.readyBatches > 0) ? 1 : grow);
    if (steps !== 0) this.ms = Math.min(this.maxMs, Math.max(this.minMs, micros(this.ms - steps * this.step)));
    this.periodStart += periods * this.periodMs;
    this.peak = this.inflight;
    this.pressed = this.readyBatches > 0;
  }

  private hadRoom(peakInflight: number, pressed: boolean): boolean {
    return !pressed && peakInflight < this.maxInflight / 2;
  }
}

/** Rounded to the microsecond, so repeated steps land on the bounds exactly. */
function micros(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
