/**
 * The data that flows through a shard: items (one per caller) and batches
 * (what one downstream call carries). Both are plain classes with a fixed
 * shape so V8 keeps them monomorphic on the hot path.
 *
 * An item is settled exactly once, by whichever comes first: its batch's
 * result, its batch's failure, its deadline, or shutdown. `settled` is the
 * guard; the ItemSink is told once, and later outcomes for the item are
 * dropped. This is what makes "no caller is answered twice, no caller hangs"
 * hold even when a deadline races a downstream answer.
 */
// perf_hooks' own export: test fake timers replace the global `performance`, without eventLoopUtilization.
import { performance as perfHooks } from 'node:perf_hooks';
import type { SpanContext } from '@opentelemetry/api';
import type { SidecarError } from '../errors.ts';

export type Trigger = 'size' | 'time' | 'drain';

/** One caller's request, as the batcher sees it: no HTTP in here. */
export class Item {
  /** The JSON body exactly as the caller sent it (valid UTF-8, already parsed once). */
  readonly body: Buffer;
  /** Monotonic ms (performance.now clock) after which the item gets 504. */
  readonly deadline: number;
  /** Monotonic ms when the sidecar accepted it. */
  readonly acceptedAt: number;
  /** Opaque to the batcher: whatever the ingress needs to answer (a Fastify reply). */
  readonly owner: unknown;
  /** The caller's sampled request span, which the batch span links to; null when not sampled. */
  traceLink: SpanContext | null = null;
  settled = false;

  constructor(body: Buffer, acceptedAt: number, deadline: number, owner: unknown) {
    this.body = body;
    this.acceptedAt = acceptedAt;
    this.deadline = deadline;
    this.owner = owner;
  }
}

export class Batch {
  readonly id: string;
  readonly shard: number;
  readonly items: Item[] = [];
  /** Monotonic ms of the first item: the time trigger counts from here. */
  readonly openedAt: number;
  /**
   * Monotonic ms when the time trigger seals it: openedAt plus the shard's
   * window when it opened. Fixed then, so a later window change (adaptive mode,
   * ADR 0016) never stretches a batch already open.
   */
  readonly closesAt: number;
  /**
   * Bytes of the body if sent now: "[" + items joined by "," + "]".
   * Starts at 1 and each item adds its length plus one separator byte.
   */
  bodyBytes = 1;
  /** Items not yet settled (a deadline or shutdown may settle some early). */
  live = 0;
  trigger: Trigger = 'time';
  /**
   * Set when the batch is sent: its shard's call signal, aborted only when the
   * shard gives up every call it has in flight (ShardQueue.rejectAll). Null
   * while the batch waits.
   */
  signal: AbortSignal | null = null;
  /** The downstream call has ended: settling the items now needs no abort. */
  answered = false;
  /** Duration of the downstream call, set when it has ended (0 before). */
  downstreamMs = 0;
  /** Monotonic ms when this batch's downstream call started; -1 until it is sent. */
  sentAt = -1;
  /** This thread's event-loop active time (ms, perf_hooks' eventLoopUtilization) when the call was sent. */
  loopActiveAtSend = 0;
  /**
   * Monotonic ms when its items first went downstream: `sentAt`, or for a half
   * of a bisected batch (ADR 0014) the original batch's. -1 until then.
   */
  firstSentAt = -1;
  /** Downstream time of the calls its items went through before this one (bisection); 0 otherwise. */
  priorDownstreamMs = 0;
  /** The BatchObserver's own slot (the batch span), opaque to the batcher. */
  observation: unknown = null;
  /** The ItemSink's own slot (what its answers share), opaque to the batcher. */
  sinkSlot: unknown = null;
  /** The failed batch this one is a half of (bisection, ADR 0014); null for a batch sealed by the shard. */
  readonly bisectedFrom: Batch | null;
  /** Halvings since the batch the shard sealed: 0 for it, 1 for its halves, and so on. */
  readonly bisectDepth: number;

  constructor(id: string, shard: number, openedAt: number, windowMs = 0, bisectedFrom: Batch | null = null) {
    this.id = id;
    this.shard = shard;
    this.openedAt = openedAt;
    this.closesAt = openedAt + windowMs;
    this.bisectedFrom = bisectedFrom;
    this.bisectDepth = bisectedFrom === null ? 0 : bisectedFrom.bisectDepth + 1;
    if (bisectedFrom !== null) {
      this.trigger = bisectedFrom.trigger;
      this.firstSentAt = bisectedFrom.firstSentAt;
      this.priorDownstreamMs = bisectedFrom.priorDownstreamMs + bisectedFrom.downstreamMs;
    }
  }

  add(item: Item): void {
    this.items.push(item);
    this.bodyBytes += item.body.length + 1;
    this.live++;
  }

  /**
   * The downstream request body: the items' own bytes joined into a JSON array,
   * copied once into one buffer. Items are never re-serialised (see ADR 0003).
   */
  encode(): Buffer {
    const body = Buffer.allocUnsafe(this.bodyBytes);
    let offset = 0;
    body[offset++] = 0x5b; // [
    for (let i = 0; i < this.items.length; i++) {
      if (i > 0) body[offset++] = 0x2c; // ,
      offset += this.items[i].body.copy(body, offset);
    }
    body[offset] = 0x5d; // ]
    return body;
  }

  /** The latest deadline of an unsettled item: no retry is worth starting after it. */
  latestDeadline(): number {
    let latest = 0;
    for (const item of this.items) if (!item.settled && item.deadline > latest) latest = item.deadline;
    return latest;
  }

  /**
   * Time its items have spent in downstream calls as of `now`: earlier calls
   * (bisection) plus this one, whole once answered, so far while in flight.
   */
  downstreamMsAt(now: number): number {
    if (this.answered) return this.priorDownstreamMs + this.downstreamMs;
    return this.sentAt < 0 ? this.priorDownstreamMs : this.priorDownstreamMs + (now - this.sentAt);
  }

  /** Takes settled items (expired while waiting) out before the batch is sent, keeping order and the body size true. */
  dropSettled(): void {
    const items = this.items;
    let kept = 0;
    let bytes = 1;
    for (const item of items) {
      if (item.settled) continue;
      items[kept++] = item;
      bytes += item.body.length + 1;
    }
    items.length = kept;
    this.bodyBytes = bytes;
  }

  /**
   * How busy this thread's event loop was while the call was out, 0..1: the
   * share of the call's time the loop spent running callbacks (a busy loop
   * reads the answer late: call-limit.ts).
   */
  loopBusySinceSent(now: number): number {
    if (this.sentAt < 0) return 0;
    const elapsed = now - this.sentAt;
    if (elapsed <= 0) return 0;
    return Math.min(1, Math.max(0, (perfHooks.eventLoopUtilization().active - this.loopActiveAtSend) / elapsed));
  }

  /** Would adding an item of `bytes` push the body past `maxBytes`? */
  wouldOverflow(bytes: number, maxBytes: number): boolean {
    return this.bodyBytes + bytes + 1 > maxBytes;
  }
}

/** What a batch's dispatch reports back to its shard when it has settled every item. */
export interface BatchOutcome {
  readonly batchId: string;
  readonly size: number;
  readonly trigger: Trigger;
  /** Downstream HTTP status of the last attempt; 0 when no answer came. */
  readonly status: number;
  readonly error: SidecarError | null;
}

/**
 * Told about each batch as it leaves and once it is settled (telemetry: spans,
 * metrics, a debug log line). Batches, not items: a handful of calls per batch.
 */
export interface BatchObserver {
  /** The batch is about to be sent; returns extra headers for the call (trace context), if any. */
  dispatching(batch: Batch): Readonly<Record<string, string>> | undefined;
  /** Every item of the batch has been settled. */
  settled(batch: Batch, outcome: BatchOutcome): void;
}

export const NO_OBSERVER: BatchObserver = Object.freeze({
  dispatching: () => undefined,
  settled: () => undefined,
});

/**
 * Where settled items go. The ingress implements it (src/http/reply-sink.ts);
 * the batcher calls it at most once per item.
 */
export interface ItemSink {
  resolve(item: Item, result: unknown, batch: Batch): void;
  reject(item: Item, error: SidecarError, batch: Batch | null): void;
}
