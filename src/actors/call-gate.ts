/**
 * The call gate: which shard may start a downstream call now. Every shard
 * asks it before each call and tells it when a call ends (ADR 0018).
 *
 * - `fixed` (DOWNSTREAM_CONCURRENCY=fixed): each shard has its own
 *   MAX_INFLIGHT_BATCHES slots; shards never wait for each other.
 * - `adaptive` (the default): one limit for all shards, because they share
 *   one downstream, learned from its latency by CallLimit (call-limit.ts),
 *   between 1 and SHARD_COUNT × MAX_INFLIGHT_BATCHES. When a slot frees, it
 *   goes to the shard whose next batch has waited longest (its first item
 *   came first), so no shard starves, whatever its share of the keys.
 *
 * The latency the law judges is the call's, less this thread's own
 * event-loop delay at the time: an answer that waits in our busy loop is not
 * the downstream's queue. Its baselines, minima, learn from the latency as
 * measured (call-limit.ts). The delay is sampled (perf_hooks'
 * monitorEventLoopDelay, a libuv timer at LOOP_RESOLUTION_MS) only while calls
 * are in flight, so an idle sidecar runs no timer.
 *
 * A batch that gets no slot is not the gate's to hold: its shard keeps it
 * open and still filling (shard-queue.ts), and the gate calls the shard back
 * (`wake`) when a slot is its turn. The gate hears of calls and slots, never
 * of items.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { CallLimit, type LimitChange } from './call-limit.ts';

/** The loop-delay sampler's resolution, ms: 1, so that it sees how long a ready callback waits (at 10 it missed most of it). */
const LOOP_RESOLUTION_MS = 1;
/** The loop delay subtracted from a call is the mean over the last window of this long (or less). */
const LOOP_WINDOW_MS = 200;

export type ConcurrencyMode = 'adaptive' | 'fixed';
export const CONCURRENCY_MODES: readonly ConcurrencyMode[] = ['adaptive', 'fixed'];

/**
 * What a finished call teaches the law: `sample`, a latency to learn from (a
 * 2xx answer); `drop`, a timeout or a downstream refusing as overloaded
 * (503/429); `ignore`, anything else (a connection error or a failed batch
 * says nothing of the downstream's queue).
 */
export type CallVerdict = 'sample' | 'drop' | 'ignore';

export function callVerdict(status: number, errorCode: string | null): CallVerdict {
  if (status >= 200 && status <= 299) return 'sample';
  if (status === 503 || status === 429 || errorCode === 'SIDECAR_ERR_DOWNSTREAM_TIMEOUT') return 'drop';
  return 'ignore';
}

/** What the gate needs of a shard. */
export interface GateMember {
  /** Calls of this shard's in flight. */
  readonly inflightCalls: number;
  /** When the first item of its next batch to send came (monotonic ms); Infinity when none is due. */
  readonly waitingSince: number;
  /** It may send now: the gate has a slot for it (the shard then asks `tryAcquire`). */
  wake(): void;
}

export interface CallGateOptions {
  readonly mode: ConcurrencyMode;
  readonly shardCount: number;
  /** MAX_INFLIGHT_BATCHES: per shard in fixed mode; × shardCount is the adaptive ceiling. */
  readonly maxInflightBatches: number;
  readonly batchMaxSize: number;
  /** Each change of the adaptive limit (a debug log line). */
  readonly onLimitChange?: (change: LimitChange) => void;
}

export class CallGate {
  readonly mode: ConcurrencyMode;
  /** Calls in flight, all shards. */
  inflight = 0;
  private readonly perShard: number;
  private readonly law: CallLimit | null;
  private readonly members: GateMember[] = [];
  private waking = false;
  /** This thread's event-loop delay while calls are in flight (adaptive mode only). */
  private readonly loop: ReturnType<typeof monitorEventLoopDelay> | null;
  private loopSince = 0;
  private loopDelayMs = 0;

  constructor({ mode, shardCount, maxInflightBatches, batchMaxSize, onLimitChange }: CallGateOptions) {
    this.mode = mode;
    this.perShard = maxInflightBatches;
    const max = shardCount * maxInflightBatches;
    // Start at one call: the first calls never queue in the downstream because
    // of us, so the latency baselines are clean (starting at one call per shard,
    // 4 calls on a downstream of 2 workers queued from the first call, the
    // baselines were queued latencies, and the limit never fell). Slow start
    // finds a downstream with room within a second or two.
    this.law = mode === 'adaptive' ? new CallLimit({ max, initial: 1, batchMaxSize, onChange: onLimitChange }) : null;
    this.loop = mode === 'adaptive' ? monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS }) : null;
  }

  /** The calls allowed in flight now, all shards (sidecar_downstream_concurrency_limit). */
  get limit(): number {
    return this.law === null ? this.perShard * this.members.length : this.law.limit;
  }

  /**
   * Would a new item of `member` wait for call slots at a pace the shard has
   * measured? Not while a slot is free (the items ahead leave at their
   * window), nor while the law is still in slow start (the limit is growing,
   * so the pace measured so far understates it).
   */
  pacesWaits(member: GateMember, now: number): boolean {
    if (this.law === null) return member.inflightCalls >= this.perShard;
    return this.inflight >= this.law.limit && !this.law.inSlowStart(now);
  }

  join(member: GateMember): void {
    this.members.push(member);
  }

  /**
   * May `member` start a call now? Counts it in flight when so. In adaptive
   * mode a free slot goes to the member whose batch has waited longest.
   */
  tryAcquire(member: GateMember): boolean {
    if (this.law === null) {
      if (member.inflightCalls >= this.perShard) return false;
    } else {
      if (this.inflight >= this.law.limit) {
        this.law.onHeld();
        return false;
      }
      if (this.members.length > 1 && this.olderThan(member.waitingSince) !== null) return false;
    }
    if (this.inflight++ === 0 && this.loop !== null) this.loop.enable();
    return true;
  }

  /**
   * `member`'s call ended at `now` (monotonic ms): its slot is free, and the
   * law learns from it. `loopBusy` is this thread's event-loop utilisation
   * while the call was out (0..1). Wakes whoever's turn it is.
   */
  release(member: GateMember, latencyMs: number, items: number, verdict: CallVerdict, now: number, loopBusy = 0): void {
    this.inflight--;
    if (this.law === null) {
      if (member.waitingSince !== Infinity && member.inflightCalls < this.perShard) member.wake();
      return;
    }
    const loopDelayMs = this.loopDelay(now);
    if (this.inflight === 0) this.loop?.disable();
    // At least half the call stays: the loop delay is an estimate, the call's latency a measurement.
    if (verdict === 'sample') this.law.onSample(Math.max(latencyMs / 2, latencyMs - loopDelayMs), items, now, this.inflight + 1, loopBusy, latencyMs);
    else if (verdict === 'drop') this.law.onDrop(now);
    this.offerFreeSlots();
  }

  /** A call that never started (nothing was left to send): its slot is free again. */
  cancel(): void {
    if (--this.inflight === 0) this.loop?.disable();
  }

  /** The mean event-loop delay (beyond the sampler's own period) over the current window, ms. */
  private loopDelay(now: number): number {
    const loop = this.loop;
    if (loop === null) return 0;
    if (now - this.loopSince >= LOOP_WINDOW_MS) {
      // The histogram's mean is of the whole interval between samples, in ns: the delay is what exceeds the resolution.
      const mean = loop.count > 0 ? loop.mean / 1e6 - LOOP_RESOLUTION_MS : 0;
      this.loopDelayMs = mean > 0 ? mean : 0;
      loop.reset();
      this.loopSince = now;
    }
    return this.loopDelayMs;
  }

  /**
   * Adaptive mode: offers the free slots to the members with the oldest
   * waiting batches, oldest first. (In fixed mode a shard's slots are its own:
   * nothing to offer.)
   */
  offerFreeSlots(): void {
    if (this.law === null) return;
    // A member woken here ends its dispatch round by calling this again: one loop suffices.
    if (this.waking) return;
    this.waking = true;
    try {
      let next: GateMember | null;
      while (this.inflight < this.law.limit && (next = this.olderThan(Infinity)) !== null) {
        const before = this.inflight;
        next.wake();
        if (this.inflight === before) break; // it took nothing: do not spin
      }
    } finally {
      this.waking = false;
    }
  }

  /** The member whose next batch has waited longest, if it came before `since`; else null. */
  private olderThan(since: number): GateMember | null {
    let oldest: GateMember | null = null;
    let at = since;
    for (const member of this.members) {
      const waiting = member.waitingSince;
      if (waiting < at) {
        at = waiting;
        oldest = member;
      }
    }
    return oldest;
  }
}
