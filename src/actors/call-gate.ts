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
 * A batch that gets no slot is not the gate's to hold: its shard keeps it
 * open and still filling (shard-queue.ts), and the gate calls the shard back
 * (`wake`) when a slot is its turn. The gate hears of calls and slots, never
 * of items.
 */
import { CallLimit } from './call-limit.ts';

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
}

export class CallGate {
  readonly mode: ConcurrencyMode;
  /** Calls in flight, all shards. */
  inflight = 0;
  private readonly perShard: number;
  private readonly law: CallLimit | null;
  private readonly members: GateMember[] = [];
  private waking = false;

  constructor({ mode, shardCount, maxInflightBatches, batchMaxSize }: CallGateOptions) {
    this.mode = mode;
    this.perShard = maxInflightBatches;
    const max = shardCount * maxInflightBatches;
    // Start at one call per shard: low enough that the first calls rarely queue
    // in a small downstream (which would spoil the latency baseline), and
    // probing doubles nothing: a downstream with room is found within a second.
    this.law = mode === 'adaptive' ? new CallLimit({ max, initial: shardCount, batchMaxSize }) : null;
  }

  /** The calls allowed in flight now, all shards (sidecar_downstream_concurrency_limit). */
  get limit(): number {
    return this.law === null ? this.perShard * this.members.length : this.law.limit;
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
    this.inflight++;
    return true;
  }

  /** `member`'s call ended at `now` (monotonic ms): its slot is free, and the law learns from it. Wakes whoever's turn it is. */
  release(member: GateMember, latencyMs: number, items: number, verdict: CallVerdict, now: number): void {
    this.inflight--;
    if (this.law === null) {
      if (member.waitingSince !== Infinity && member.inflightCalls < this.perShard) member.wake();
      return;
    }
    if (verdict === 'sample') this.law.onSample(latencyMs, items, now);
    else if (verdict === 'drop') this.law.onDrop(now);
    this.offerFreeSlots();
  }

  /** A call that never started (nothing was left to send): its slot is free again. */
  cancel(): void {
    this.inflight--;
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
