/**
 * The call gate in the batcher (ADR 0018): batches that keep filling while no
 * slot is free, one limit shared by the shards with the oldest batch served
 * first, and items refused when the wait ahead of them is too long (ADR 0020).
 * Fake timers and a fake downstream answered by the test.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Item, type Batch, type ItemSink } from '../../src/actors/batch.ts';
import { Batcher, type BatcherConfig } from '../../src/actors/batcher.ts';
import { CallGate, type GateMember } from '../../src/actors/call-gate.ts';
import type { SidecarError } from '../../src/errors.ts';
import { FakeDownstream } from '../support/fake-downstream.ts';

const BASE: BatcherConfig = {
  shardCount: 1,
  batchMaxSize: 5,
  batchMaxWaitMs: 10,
  batchMaxBytes: 1_000,
  maxInflightBatches: 1,
  maxQueuePerShard: 100,
  downstreamConcurrency: 'fixed',
};

function setup(config: Partial<BatcherConfig> = {}) {
  const downstream = new FakeDownstream();
  const answers = new Map<number, { result?: unknown; error?: SidecarError }>();
  const sink: ItemSink = {
    resolve: (item: Item, result: unknown, _batch: Batch) => answers.set(item.owner as number, { result }),
    reject: (item: Item, error: SidecarError) => answers.set(item.owner as number, { error }),
  };
  const batcher = new Batcher({ config: { ...BASE, ...config }, downstream, sink, now: () => Date.now() }).start();
  const submit = (id: number, { shard = 0, timeoutMs = 10_000 } = {}) => {
    const now = Date.now();
    return batcher.submit(shard, new Item(Buffer.from(JSON.stringify({ id })), now, now + timeoutMs, id));
  };
  const ids = (call: number) => downstream.calls[call].items.map((item) => (item as { id: number }).id);
  return { batcher, downstream, answers, submit, ids };
}

const settle = () => vi.advanceTimersByTimeAsync(0);

describe('call gate', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('keeps a batch whose window closed while no slot was free open and filling, and sends it at the next slot', async () => {
    const { downstream, submit, ids } = setup();
    submit(1);
    await vi.advanceTimersByTimeAsync(10);
    expect(downstream.calls).toHaveLength(1); // a slot was free: it left at its window
    submit(2);
    await vi.advanceTimersByTimeAsync(30); // its window closed 20 ms ago, no slot
    submit(3);
    submit(4);
    expect(downstream.calls).toHaveLength(1);
    downstream.calls[0].echo();
    await settle();
    expect(downstream.calls).toHaveLength(2);
    expect(ids(1)).toEqual([2, 3, 4]);
  });

  it('seals a waiting batch by size when it fills, and the next batch opens with its own window', async () => {
    const { downstream, submit, ids } = setup();
    submit(0);
    await vi.advanceTimersByTimeAsync(10);
    for (let id = 1; id <= 7; id++) submit(id); // 1..5 fill a batch; 6, 7 open the next
    await vi.advanceTimersByTimeAsync(50);
    downstream.calls[0].echo();
    await settle();
    expect(ids(1)).toEqual([1, 2, 3, 4, 5]);
    downstream.calls[1].echo();
    await settle();
    expect(ids(2)).toEqual([6, 7]);
  });

  it('adaptive: one limit for all shards, starting at one call, and a freed slot goes to the shard whose batch has waited longest', async () => {
    const { batcher, downstream, submit, ids } = setup({ shardCount: 2, downstreamConcurrency: 'adaptive' });
    expect(batcher.callLimit).toBe(1);
    submit(1, { shard: 0 });
    await vi.advanceTimersByTimeAsync(10);
    expect(downstream.calls.map((_, call) => ids(call))).toEqual([[1]]); // the one slot
    submit(10, { shard: 1 }); // waits for a slot from now
    await vi.advanceTimersByTimeAsync(5);
    submit(4, { shard: 0 }); // waits too, but came later
    await vi.advanceTimersByTimeAsync(20);
    expect(downstream.calls).toHaveLength(1);
    downstream.calls[0].echo(); // shard 0's call ends...
    await settle();
    expect(ids(1)).toEqual([10]); // ...and the slot goes to shard 1, whose item came first
    if (downstream.calls.length < 3) {
      downstream.calls[1].echo();
      await settle();
    }
    expect(ids(2)).toEqual([4]);
    expect(batcher.callLimit).toBeLessThanOrEqual(2); // never above SHARD_COUNT × MAX_INFLIGHT_BATCHES
  });

  it('refuses an item when the wait ahead of it, in full batches at the recent time per call, passes MAX_QUEUE_WAIT_MS', async () => {
    const { downstream, submit, answers } = setup({ batchMaxSize: 2, maxQueueWaitMs: 250 });
    expect(submit(1)).toBeNull(); // no rate known yet: taken
    await vi.advanceTimersByTimeAsync(100);
    downstream.calls[0].echo(); // one call per 100 ms of work
    await settle();
    submit(2);
    submit(3); // a full batch: in flight, the only slot taken
    await settle();
    expect(downstream.calls).toHaveLength(2);
    expect([4, 5, 6, 7].map((id) => submit(id))).toEqual([null, null, null, null]); // two batches ahead: 200 ms
    const refusal = submit(8); // a third batch: 300 ms > 250
    expect(refusal?.code).toBe('SIDECAR_ERR_QUEUE_WAIT');
    expect(refusal?.statusCode).toBe(503);
    expect(refusal?.retryAfterSeconds).toBeCloseTo(0.2, 1);
    expect(answers.has(8)).toBe(false); // nothing queued: the ingress answers the refusal
  });

  it('refuses an item whose own deadline would pass before its turn, and takes one that fits', async () => {
    const { downstream, submit } = setup({ batchMaxSize: 2, maxQueueWaitMs: 10_000 });
    submit(1);
    await vi.advanceTimersByTimeAsync(100);
    downstream.calls[0].echo();
    await settle();
    submit(2);
    submit(3);
    await settle();
    submit(4);
    submit(5); // a batch ahead: 100 ms
    expect(submit(6, { timeoutMs: 150 })?.code).toBe('SIDECAR_ERR_QUEUE_WAIT'); // 2 batches: 200 ms
    expect(submit(7, { timeoutMs: 250 })).toBeNull();
  });

  it('never sends an item whose deadline passed while its batch waited for a slot', async () => {
    const { downstream, submit, answers, ids } = setup();
    submit(1);
    await vi.advanceTimersByTimeAsync(10);
    submit(2, { timeoutMs: 50 });
    submit(3);
    await vi.advanceTimersByTimeAsync(100);
    expect(answers.get(2)?.error?.code).toBe('SIDECAR_ERR_DEADLINE_EXCEEDED');
    downstream.calls[0].echo();
    await settle();
    expect(ids(1)).toEqual([3]);
  });

  it('judges waits by the slots\' pace only while no slot is free and the adaptive limit has met a knee', () => {
    const member: GateMember = { inflightCalls: 0, waitingSince: Infinity, wake: () => {} };
    const fixed = new CallGate({ mode: 'fixed', shardCount: 1, maxInflightBatches: 1, batchMaxSize: 100 });
    fixed.join(member);
    expect(fixed.pacesWaits(member, 0)).toBe(false); // a slot is free: the next batch leaves at its window
    (member as { inflightCalls: number }).inflightCalls = 1;
    expect(fixed.pacesWaits(member, 0)).toBe(true);
    const adaptive = new CallGate({ mode: 'adaptive', shardCount: 4, maxInflightBatches: 8, batchMaxSize: 100 });
    adaptive.join(member);
    expect(adaptive.tryAcquire(member)).toBe(true); // the limit starts at one call
    expect(adaptive.tryAcquire(member)).toBe(false);
    // Slow start: the limit is still growing, so the pace measured so far understates it.
    expect(adaptive.pacesWaits(member, 1_000)).toBe(false);
    // Calls that queue in the downstream end slow start (a baseline of 50 ms, then a downstream of one worker).
    adaptive.release(member, 50, 100, 'sample', 1_000);
    let t = 1_000;
    for (let round = 0; round < 8; round++) {
      while (adaptive.tryAcquire(member));
      const inflight = adaptive.limit;
      const latency = 50 * inflight;
      for (let i = 0; i < inflight; i++) adaptive.release(member, latency, 100, 'sample', (t += latency / inflight));
    }
    while (adaptive.tryAcquire(member));
    expect(adaptive.pacesWaits(member, t)).toBe(true);
  });
});
