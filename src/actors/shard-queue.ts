/**
 * The data half of a shard: where its items wait, and the bookkeeping that
 * keeps every one of them answered exactly once. The shard machine
 * (shard.machine.ts) is the control half: it decides *when* a batch is sealed
 * and dispatched; this class decides *what* is in it.
 *
 *   offer(item) ──► open batch ──seal(trigger)──► ready FIFO ──takeReady()──► in flight
 *                   (≤ BATCH_MAX_SIZE items,       (sealed, waiting     (Map by batch id,
 *                    ≤ BATCH_MAX_BYTES body)        for a slot)          slots from the CallGate)
 *
 * Invariants:
 * - `waiting` counts unsettled items in the open batch, the ready FIFO and the halves of
 *   bisected batches; an offer is refused once it reaches MAX_QUEUE_PER_SHARD, or, while
 *   calls wait for slots at a known pace (CallGate.pacesWaits), when the wait ahead of it
 *   (the waiting items, in full batches, at the shard's recent time per call) would
 *   outlast its deadline or MAX_QUEUE_WAIT_MS (ADR 0020).
 * - A batch never holds more than BATCH_MAX_SIZE items nor a body over
 *   BATCH_MAX_BYTES: it is sealed the moment it is full, and an item that
 *   would overflow the byte cap seals the batch before it.
 * - Batches leave in the order they were sealed; items keep arrival order.
 * - Items are settled through `resolve`/`reject` only, which ignore an item
 *   already settled. The deadline sweep (deadline-timer.ts) settles expired
 *   items wherever they are (504); they leave a batch before it is sent.
 * - With ISOLATE_FAILED_BATCHES, a failed batch hands its live items to two
 *   halves (`bisect`) that leave before any sealed batch (ADR 0014).
 *
 * The time trigger is a timer armed when a batch opens, for its first item's
 * arrival plus the window at that moment, so a later item never extends a
 * window. A window that closes while the CallGate has no slot for the shard
 * leaves the batch open and due: it keeps filling up to the caps and is sealed
 * when a slot is its turn, so under load the downstream gets fewer, fuller
 * calls (ADR 0018). A call holds its slot until the downstream answers or
 * DOWNSTREAM_TIMEOUT_MS passes, even once every item has been answered: the
 * legacy system is still doing that work (ADR 0019).
 *
 * The machine hears of state changes only, never of items: one `batch.sealed`
 * when the size, the byte cap or the window sealed a batch, and `batch.done`
 * when a call ends while batches wait for its slot or the shard drains. Each
 * xstate macrostep costs several kB and tens of µs on a busy loop (ADR 0013).
 * The BatchWindow (batch-window.ts) hears of the same changes.
 */
import { setMaxListeners } from 'node:events';
import { SidecarErrors, type SidecarError } from '../errors.ts';
import { Batch, type BatchOutcome, type Item, type ItemSink, type Trigger } from './batch.ts';
import type { BatchWindow } from './batch-window.ts';
import { callVerdict, type CallGate, type GateMember } from './call-gate.ts';
import { DeadlineTimer } from './deadline-timer.ts';
import { DrainRate } from './drain-rate.ts';
import { Fifo } from './fifo.ts';

export type ShardSignal = { readonly type: 'batch.sealed' } | { readonly type: 'batch.done' };
const SEALED: ShardSignal = Object.freeze({ type: 'batch.sealed' });
const DONE: ShardSignal = Object.freeze({ type: 'batch.done' });

/**
 * What `offer` did with an item: took it, or why not (nothing is queued then):
 * `full` when MAX_QUEUE_PER_SHARD items already wait, `too-long` when the wait
 * ahead of it would outlast its deadline or MAX_QUEUE_WAIT_MS.
 */
export type Offer = 'taken' | 'full' | 'too-long';

export interface ShardQueueOptions {
  readonly index: number;
  readonly batchMaxSize: number;
  readonly batchMaxBytes: number;
  readonly maxQueue: number;
  /** MAX_QUEUE_WAIT_MS: the longest expected wait an item is taken for. */
  readonly maxQueueWaitMs: number;
  /** Decides when the shard may start a call (shared by every shard in adaptive mode). */
  readonly gate: CallGate;
  /** Prefix of batch ids, unique per process start (ids stay unique across restarts). */
  readonly batchIdPrefix: string;
  readonly sink: ItemSink;
  /** The shard's batch window (fixed or adaptive): read when a batch opens. */
  readonly window: BatchWindow;
  /** Monotonic clock in ms; injectable for tests with fake timers. */
  readonly now: () => number;
}

/** The signal of a shard's calls: one listener per call in flight, however many (no leak warning past 10). */
const callsController = (controller = new AbortController()): AbortController => (setMaxListeners(0, controller.signal), controller);

export interface ShardSignalTarget {
  send(signal: ShardSignal): void;
}

export class ShardQueue implements GateMember {
  readonly index: number;
  readonly now: () => number;
  /** Unsettled items in the open batch, the ready FIFO and the halves waiting to be resent. */
  waiting = 0;
  /** Set when the shard starts draining: every finished call is then signalled. */
  draining = false;
  /** Items sealed into a batch by the drain trigger (reported when shutdown ends). */
  drainFlushed = 0;
  readonly inflight = new Map<string, Batch>();
  /** Calls completed per second while the shard had work, recently (expected waits, retry-after). */
  readonly drainRate = new DrainRate();
  readonly window: BatchWindow;
  /** The gate in force (the shard machine asks it before each call). */
  readonly gate: CallGate;

  private readonly options: ShardQueueOptions;
  private open: Batch | null = null;
  /** The open batch's window has closed while no slot was free: it leaves at the next slot. */
  private openDue = false;
  private readonly ready = new Fifo<Batch>();
  /** Halves of bisected batches, sent before the sealed batches in `ready`. */
  private readonly halves = new Fifo<Batch>();
  private sequence = 0;
  private target: ShardSignalTarget | null = null;
  private windowTimer: NodeJS.Timeout | null = null;
  /** Fires a sweep at the earliest deadline of an item the shard holds (deadline-timer.ts). */
  private readonly deadlines: DeadlineTimer;
  /** When the shard last went from holding nothing (no item, no call) to holding work. */
  private busySince = 0;
  /** Every call of the shard listens to this one signal (one controller per batch cost 1 % of the CPU at 5,000 req/s). */
  private calls = callsController();

  constructor(options: ShardQueueOptions) {
    this.options = options;
    this.index = options.index;
    this.now = options.now;
    this.window = options.window;
    this.gate = options.gate;
    this.gate.join(this);
    this.deadlines = new DeadlineTimer(options.now, () => this.sweep());
  }

  /** The shard actor that receives this queue's signals (re-attached if the shard restarts). */
  attach(target: ShardSignalTarget): void {
    this.target = target;
  }

  /** Takes an item, or says why not: the queue is full, or the wait ahead of it is too long. */
  offer(item: Item): Offer {
    const { batchMaxSize, batchMaxBytes, maxQueue, maxQueueWaitMs } = this.options;
    const waiting = this.waiting;
    if (waiting >= maxQueue) return 'full';
    if (waiting === 0 && this.inflight.size === 0) this.busySince = item.acceptedAt;
    // With a slot free the items ahead leave at their window; otherwise at the slots' pace.
    else if (waiting > 0 && this.gate.pacesWaits(this, item.acceptedAt)) {
      const waitMs = this.expectedWaitMs(waiting + 1);
      if (waitMs > maxQueueWaitMs || item.acceptedAt + waitMs > item.deadline) return 'too-long';
    }
    const bytes = item.body.length; // read before anything changes: a bad item must not leave a half-made batch
    let sealed = false;
    let open = this.open;
    if (open !== null && open.wouldOverflow(bytes, batchMaxBytes)) {
      this.seal('size');
      open = null;
      sealed = true;
    }
    if (open === null) {
      const id = `${this.options.batchIdPrefix}-${this.index}-${++this.sequence}`;
      open = this.open = new Batch(id, this.index, item.acceptedAt, this.window.currentMs);
      this.armWindow(open.closesAt);
    }
    open.add(item);
    this.waiting++;
    if (open.items.length >= batchMaxSize) {
      this.seal('size');
      sealed = true;
    }
    if (item.deadline < this.deadlines.at) this.deadlines.arm(item.deadline);
    if (sealed) this.target?.send(SEALED);
    return 'taken';
  }

  /**
   * Expected ms until `items` waiting items have all left: in full batches, at
   * the shard's recent time per call; 0 while no fresh rate is known. Under
   * load batches leave full (they fill while they wait for a slot), so this is
   * the wait; at light load it is a small fraction of the budget.
   */
  expectedWaitMs(items: number): number {
    return Math.ceil(items / this.options.batchMaxSize) * this.drainRate.freshMsPerCall(this.busySince);
  }

  /**
   * Seconds until the items waiting now would have left (retry-after of a
   * refusal, ADR 0015); null until a call has been timed.
   */
  drainSeconds(): number | null {
    if (this.waiting === 0) return 0;
    return this.drainRate.freshMsPerCall(this.busySince) === 0 ? null : this.expectedWaitMs(this.waiting) / 1000;
  }

  /** Calls of this shard in flight (GateMember). */
  get inflightCalls(): number {
    return this.inflight.size;
  }

  /** When the first item of the next batch to send came; Infinity when none is due (GateMember). */
  get waitingSince(): number {
    const next = this.halves.peek() ?? this.ready.peek() ?? (this.openDue ? this.open : undefined);
    return next === undefined || next === null ? Infinity : next.openedAt;
  }

  /** A slot is this shard's turn (GateMember): the machine dispatches. */
  wake(): void {
    this.target?.send(DONE);
  }

  /** Unsettled items in the shard's calls in flight (a handful of batches: read at shutdown steps only). */
  get inflightItems(): number {
    let count = 0;
    for (const batch of this.inflight.values()) count += batch.live;
    return count;
  }

  /** Nothing waits: no open batch and no sealed batch (or half) waiting for a slot. */
  get isEmpty(): boolean {
    return this.open === null && this.ready.length === 0 && this.halves.length === 0;
  }

  /** Moves the open batch, if any, to the ready FIFO (and stops its window timer). */
  seal(trigger: Trigger): void {
    const open = this.open;
    if (open === null) return;
    if (this.windowTimer !== null) {
      clearTimeout(this.windowTimer);
      this.windowTimer = null;
    }
    open.trigger = trigger;
    if (trigger === 'drain') this.drainFlushed += open.live;
    this.ready.push(open);
    this.open = null;
    this.openDue = false;
  }

  /**
   * The next ready batch to send, with expired items taken out, now counted as
   * in flight; batches whose items have all expired are dropped on the way.
   */
  takeReady(): Batch | undefined {
    // A due open batch leaves after every sealed one (it opened after them).
    if (this.openDue && this.halves.length === 0 && this.ready.length === 0) this.seal('time');
    let batch: Batch | undefined;
    while ((batch = this.halves.shift() ?? this.ready.shift()) !== undefined) {
      // The sweep may not have run yet for an item that has just expired.
      const now = this.now();
      for (const item of batch.items) {
        if (!item.settled && item.deadline <= now) this.reject(item, new SidecarErrors.SIDECAR_ERR_DEADLINE_EXCEEDED(), batch);
      }
      if (batch.live === 0) continue;
      if (batch.live !== batch.items.length) batch.dropSettled();
      this.waiting -= batch.live;
      batch.signal = this.calls.signal;
      this.inflight.set(batch.id, batch);
      return batch;
    }
    return undefined;
  }

  /**
   * The end of a dispatch round: the window controller sees the calls in
   * flight and what still waits, and a slot left free goes to the shard whose
   * turn it is (this one may have yielded it to an older batch).
   */
  dispatched(): void {
    this.window.dispatched(this.inflight.size, this.ready.length + (this.openDue ? 1 : 0));
    this.gate.offerFreeSlots();
  }

  /**
   * The batch's call is over (every item settled): it no longer counts as in
   * flight, and its slot goes back to the gate with what the call measured.
   */
  finish(batchId: string, outcome: BatchOutcome): void {
    const batch = this.inflight.get(batchId);
    if (batch !== undefined) {
      this.inflight.delete(batchId);
      const now = this.now();
      this.drainRate.record(now, this.busySince);
      const verdict = callVerdict(outcome.status, outcome.error === null ? null : outcome.error.code);
      this.gate.release(this, batch.downstreamMs, outcome.size, verdict, now, batch.loopBusySinceSent(now));
      // Let go of the items (every caller's request, reply and body): a dead batch in the old generation
      // kept scavenges promoting them, 6 MB and 11 ms per scavenge at 10,000 req/s; 0.2 MB and 3.3 ms so (ADR 0013).
      batch.items.length = 0;
    }
    this.window.finished(this.inflight.size, this.ready.length + (this.openDue ? 1 : 0));
    // While draining every finished call is a step towards the final state.
    if (this.draining) this.target?.send(DONE);
  }

  /**
   * Splits a failed batch whose call is over into two halves of its live items,
   * in order, which wait ahead of the sealed batches (ADR 0014). The batch
   * keeps no item: from now on its halves answer them. Call before `finish`,
   * which then has the machine dispatch the halves.
   */
  bisect(batch: Batch): void {
    const live: Item[] = [];
    for (const item of batch.items) if (!item.settled) live.push(item);
    batch.items.length = 0;
    batch.live = 0;
    const middle = Math.ceil(live.length / 2);
    this.addHalf(batch, live, 0, middle, '.1');
    this.addHalf(batch, live, middle, live.length, '.2');
  }

  private addHalf(parent: Batch, items: Item[], from: number, to: number, suffix: string): void {
    if (from === to) return;
    const half = new Batch(`${parent.id}${suffix}`, this.index, parent.openedAt, 0, parent);
    for (let i = from; i < to; i++) half.add(items[i]);
    this.waiting += half.live;
    this.halves.push(half);
  }

  resolve(item: Item, result: unknown, batch: Batch): void {
    if (item.settled) return;
    this.markSettled(item, batch);
    this.options.sink.resolve(item, result, batch);
  }

  reject(item: Item, error: SidecarError, batch: Batch): void {
    if (item.settled) return;
    this.markSettled(item, batch);
    this.options.sink.reject(item, error, batch);
  }

  /**
   * Settles every item the shard holds with `error`, aborts its calls in flight
   * and empties the queue (shutdown timeout, or the shard actor failed). The
   * aborted calls stay counted in flight until they end (finish), so a
   * restarted shard never has more than MAX_INFLIGHT_BATCHES calls open.
   */
  rejectAll(error: SidecarError): number {
    let count = 0;
    for (const batch of this.batches()) {
      for (const item of batch.items) {
        if (item.settled) continue;
        this.reject(item, error, batch);
        count++;
      }
    }
    this.open = null;
    this.openDue = false;
    if (this.windowTimer !== null) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    while (this.ready.shift() !== undefined);
    while (this.halves.shift() !== undefined);
    // Nobody will read these answers: free the connections (the process is exiting, or the shard
    // failed and restarts). A call already answered no longer listens.
    this.calls.abort();
    this.calls = callsController();
    return count;
  }

  /** Sweeps now, as the deadline timer would. Exposed for tests. */
  sweep(): void {
    const now = this.now();
    this.deadlines.sweeping(now);
    let next = Infinity;
    for (const batch of this.batches()) {
      if (batch.live === 0) continue;
      for (const item of batch.items) {
        if (item.settled) continue;
        if (item.deadline <= now) this.reject(item, new SidecarErrors.SIDECAR_ERR_DEADLINE_EXCEEDED(), batch);
        else if (item.deadline < next) next = item.deadline;
      }
    }
    if (next !== Infinity) this.deadlines.arm(next);
  }

  stop(): void {
    if (this.windowTimer !== null) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    this.deadlines.stop();
  }

  private markSettled(item: Item, batch: Batch): void {
    item.settled = true;
    batch.live--;
    // An item of a call in flight leaves the call running (ADR 0019).
    if (batch.signal === null) this.waiting--;
  }

  private *batches(): IterableIterator<Batch> {
    if (this.open !== null) yield this.open;
    yield* this.ready;
    yield* this.halves;
    yield* this.inflight.values();
  }

  /** The time trigger of the batch just opened: seal it at `closesAt` and tell the machine. */
  private armWindow(closesAt: number): void {
    this.windowTimer = setTimeout(this.sealOnTime, Math.max(0, closesAt - this.now()));
  }

  /** The window closed: the batch is due, and leaves now if the gate has a slot for it, else at its turn. */
  private readonly sealOnTime = (): void => {
    this.windowTimer = null;
    this.openDue = true;
    this.target?.send(SEALED);
  };
}
