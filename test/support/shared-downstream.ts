/**
 * Clients of one limited downstream, event by event, for the call-limit law
 * (src/actors/call-limit.ts) where round-by-round tests cannot go: clients
 * whose rounds end at different times, and calls that queue behind the other
 * client's in the downstream.
 *
 * Each client is the shard queue and the call gate in miniature. Its items
 * arrive evenly over its shards; a batch opens on an item and is due after the
 * window; a due batch waits for a slot, filling up to the size cap, and the
 * batch that has waited longest leaves first while the client's law has room.
 * An item is refused when the wait ahead of it (its shard's waiting items, in
 * full batches, at the pace of the client's calls) would outlast the queue
 * budget. The downstream works `workers` calls at a time, first come first
 * served, each for 50 ms + 0.5 ms per item, ±3 %; a share of calls
 * (`slowShare`) takes 1.3-1.6× longer (a busy machine, a GC pause: the noise
 * a 2-core bench box shows).
 */
import { CallLimit } from '../../src/actors/call-limit.ts';

export interface SharedRun {
  readonly workers: number;
  /** Items/s offered to each client. */
  readonly rates: readonly number[];
  readonly seconds: number;
  readonly seed: number;
  readonly slowShare: number;
}

export interface ClientFigures {
  readonly calls: number;
  readonly items: number;
  readonly refused: number;
}

const SHARDS = 4;
const BATCH_MAX_SIZE = 100;
const WINDOW_MS = 10;
const QUEUE_BUDGET_MS = 1_000;
const serviceMs = (items: number): number => 50 + 0.5 * items;

/** A seeded generator (an LCG). */
export function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

type Job = { readonly items: number; readonly sentAt: number; readonly done: (latencyMs: number) => void };
/** A shard's open batch (its size, when it opened, whether its window closed) and its sealed batches, by when they opened. */
type Shard = { open: number; openedAt: number; due: boolean; readonly ready: { items: number; since: number }[] };

export function runShared({ workers, rates, seconds, seed, slowShare }: SharedRun): ClientFigures[] {
  const random = seeded(seed);
  const end = seconds * 1000;
  const events: { t: number; n: number; run: () => void }[] = [];
  let now = 0;
  let sequence = 0;
  // A sorted queue is enough at this size: a few thousand events a second of model time.
  const at = (t: number, run: () => void): void => {
    const event = { t, n: sequence++, run };
    let i = events.length;
    while (i > 0 && (events[i - 1]!.t > t || (events[i - 1]!.t === t && events[i - 1]!.n > event.n))) i--;
    events.splice(i, 0, event);
  };

  let busy = 0;
  const queue: Job[] = [];
  const work = (): void => {
    while (busy < workers && queue.length > 0) {
      const job = queue.shift()!;
      busy++;
      const slow = random() < slowShare ? 1.3 + 0.3 * random() : 1;
      at(now + serviceMs(job.items) * (0.97 + 0.06 * random()) * slow, () => {
        busy--;
        work();
        job.done(now - job.sentAt);
      });
    }
  };

  const client = (rate: number): ClientFigures => {
    const law = new CallLimit({ max: SHARDS * 8, initial: 1, batchMaxSize: BATCH_MAX_SIZE, random });
    const shards: Shard[] = Array.from({ length: SHARDS }, () => ({ open: 0, openedAt: 0, due: false, ready: [] }));
    const figures = { calls: 0, items: 0, refused: 0 };
    let inflight = 0;
    let lastLatencyMs = serviceMs(BATCH_MAX_SIZE);
    const waitingSince = (shard: Shard): number => shard.ready[0]?.since ?? (shard.due ? shard.openedAt + WINDOW_MS : Infinity);
    const send = (items: number): void => {
      inflight++;
      figures.calls++;
      figures.items += items;
      queue.push({ items, sentAt: now, done: (latencyMs) => {
        inflight--;
        lastLatencyMs = latencyMs;
        law.onSample(latencyMs, items, now, inflight + 1);
        dispatch();
      } });
      work();
    };
    const dispatch = (): void => {
      for (;;) {
        let oldest: Shard | null = null;
        for (const shard of shards) if (waitingSince(shard) < (oldest === null ? Infinity : waitingSince(oldest))) oldest = shard;
        if (oldest === null) return;
        if (inflight >= law.limit) return law.onHeld();
        if (oldest.ready.length > 0) send(oldest.ready.shift()!.items);
        else {
          send(oldest.open);
          oldest.open = 0;
          oldest.due = false;
        }
      }
    };
    const gapMs = (1000 * SHARDS) / rate;
    shards.forEach((shard) => {
      const arrive = (): void => {
        const waiting = shard.open + shard.ready.reduce((sum, batch) => sum + batch.items, 0);
        const paced = waiting > 0 && inflight >= law.limit && !law.inSlowStart(now);
        const waitMs = (Math.ceil((waiting + 1) / BATCH_MAX_SIZE) * lastLatencyMs * SHARDS) / law.limit;
        if (paced && waitMs > QUEUE_BUDGET_MS) figures.refused++;
        else {
          if (shard.open === 0) {
            const opened = (shard.openedAt = now);
            at(now + WINDOW_MS, () => {
              if (shard.open === 0 || shard.openedAt !== opened) return;
              shard.due = true;
              dispatch();
            });
          }
          if (++shard.open >= BATCH_MAX_SIZE) {
            shard.ready.push({ items: shard.open, since: shard.openedAt });
            shard.open = 0;
            shard.due = false;
            dispatch();
          }
        }
        if (now + gapMs < end) at(now + gapMs, arrive);
      };
      at(random() * gapMs, arrive);
    });
    return figures;
  };

  const figures = rates.map(client);
  while (events.length > 0 && events[0]!.t <= end) {
    const event = events.shift()!;
    now = event.t;
    event.run();
  }
  return figures;
}
