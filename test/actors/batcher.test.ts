import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Batch} from '../../src/actors/batch.ts';
import { Item, type ItemSink } from '../../src/actors/batch.ts';
import { Batcher, type BatcherConfig } from '../../src/actors/batcher.ts';
import type { SidecarError } from '../../src/errors.ts';
import { FakeDownstream } from '../support/fake-downstream.ts';

interface Answer {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: SidecarError;
  readonly batch: Batch | null;
}

class RecordingSink implements ItemSink {
  readonly answers: Answer[] = [];
  resolve(item: Item, result: unknown, batch: Batch): void {
    this.answers.push({ id: item.owner as number, result, batch });
  }
  reject(item: Item, error: SidecarError, batch: Batch | null): void {
    this.answers.push({ id: item.owner as number, error, batch });
  }
  of(id: number): Answer | undefined {
    return this.answers.find((answer) => answer.id === id);
  }
}

const BASE: BatcherConfig = {
  shardCount: 1,
  batchMaxSize: 3,
  batchMaxWaitMs: 10,
  batchMaxBytes: 1_000,
  maxInflightBatches: 2,
  maxQueuePerShard: 100,
  // These tests pin a shard's own mechanics: its slots are its own (the shared, learned limit: call-gate.test.ts).
  downstreamConcurrency: 'fixed',
};

function setupBatcher(config: Partial<BatcherConfig> = {}) {
  const downstream = new FakeDownstream();
  const sink = new RecordingSink();
  const batcher = new Batcher({ config: { ...BASE, ...config }, downstream, sink, now: () => Date.now() }).start();
  const submit = (id: number, { timeoutMs = 10_000, shard = 0, body = { id } } = {}) => {
    const now = Date.now();
    const item = new Item(Buffer.from(JSON.stringify(body)), now, now + timeoutMs, id);
    return batcher.submit(shard, item);
  };
  return { batcher, downstream, sink, submit };
}

/** Lets promise callbacks (fake downstream answers, actor done events) run. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe('Batcher and shard actor', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('dispatches when the batch reaches BATCH_MAX_SIZE without waiting for the window', async () => {
    const { downstream, submit } = setupBatcher();
    submit(1);
    submit(2);
    expect(downstream.calls).toHaveLength(0);
    submit(3);
    await settle();
    expect(downstream.calls).toHaveLength(1);
    expect(downstream.calls[0].items).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('sends a lone item when BATCH_MAX_WAIT_MS have passed since it arrived', async () => {
    const { downstream, submit, sink } = setupBatcher();
    submit(1);
    await vi.advanceTimersByTimeAsync(9);
    expect(downstream.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(downstream.calls).toHaveLength(1);
    downstream.calls[0].echo();
    await settle();
    expect(sink.of(1)?.result).toEqual({ echo: { id: 1 } });
    expect(sink.of(1)?.batch?.trigger).toBe('time');
  });

  it('adds an item arriving mid-window to that batch without restarting the window', async () => {
    const { downstream, submit } = setupBatcher();
    submit(1);
    await vi.advanceTimersByTimeAsync(6);
    submit(2);
    await vi.advanceTimersByTimeAsync(4);
    expect(downstream.calls).toHaveLength(1);
    expect(downstream.calls[0].items).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('keeps the window counted from the first item when a finished batch frees a slot meanwhile', async () => {
    const { downstream, submit } = setupBatcher();
    submit(1);
    submit(2);
    submit(3); // sealed by size, in flight
    await settle();
    submit(4); // opens the next window at t=0
    await vi.advanceTimersByTimeAsync(7);
    downstream.calls[0].echo(); // done event passes the shard through `dispatching`
    await vi.advanceTimersByTimeAsync(3);
    expect(downstream.calls).toHaveLength(2);
    expect(downstream.calls[1].items).toEqual([{ id: 4 }]);
  });

  it('seals a batch before an item that would push its body past BATCH_MAX_BYTES', async () => {
    // Each body {"id":N,"pad":"xxxxxxxxxx"} is 27 bytes; two make a 57-byte array.
    const { downstream, submit } = setupBatcher({ batchMaxBytes: 60, batchMaxSize: 10 });
    const pad = 'x'.repeat(10);
    submit(1, { body: { id: 1, pad } as never });
    submit(2, { body: { id: 2, pad } as never });
    submit(3, { body: { id: 3, pad } as never });
    await settle();
    expect(downstream.calls).toHaveLength(1);
    expect(downstream.calls[0].request.body.length).toBeLessThanOrEqual(60);
    expect(downstream.calls[0].items).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(10);
    expect(downstream.calls[1].items).toHaveLength(1);
  });

  it('keeps at most MAX_INFLIGHT_BATCHES in flight and sends waiting batches in order', async () => {
    const { downstream, submit, batcher } = setupBatcher({ batchMaxSize: 1, maxInflightBatches: 2 });
    for (let id = 1; id <= 5; id++) expect(submit(id)).toBeNull();
    await settle();
    expect(downstream.calls).toHaveLength(2);
    expect(batcher.stats()[0]).toMatchObject({ shard: 0, waiting: 3, inflight: 2 });
    downstream.calls[0].echo();
    await settle();
    expect(downstream.calls).toHaveLength(3);
    downstream.calls[1].echo();
    downstream.calls[2].echo();
    await settle();
    expect(downstream.calls.map((call) => call.items)).toEqual([[{ id: 1 }], [{ id: 2 }], [{ id: 3 }], [{ id: 4 }], [{ id: 5 }]]);
    expect(downstream.maxInflight).toBe(2);
  });

  it('refuses an item at once when MAX_QUEUE_PER_SHARD items wait', async () => {
    const { submit, batcher } = setupBatcher({ batchMaxSize: 2, maxInflightBatches: 1, maxQueuePerShard: 3 });
    submit(1);
    submit(2); // in flight: no longer waiting
    await settle();
    submit(3);
    submit(4);
    submit(5);
    expect(submit(6)?.code).toBe('SIDECAR_ERR_QUEUE_FULL');
    expect(batcher.stats()[0].waiting).toBe(3);
  });

  it('estimates the wait of a refused item from the batches waiting and the calls per second (retry-after)', async () => {
    const { downstream, submit } = setupBatcher({ batchMaxSize: 10, maxInflightBatches: 1, maxQueuePerShard: 60 });
    for (let id = 0; id < 70; id++) expect(submit(id)).toBeNull();
    await settle();
    // No call has ended yet: no estimate (the header says 1).
    expect(submit(70)?.retryAfterSeconds).toBeNull();
    await vi.advanceTimersByTimeAsync(1000);
    downstream.calls[0].echo(); // one call of 10 items a second
    await settle();
    for (let id = 100; id < 110; id++) expect(submit(id)).toBeNull();
    const refusal = submit(110);
    expect(refusal?.code).toBe('SIDECAR_ERR_QUEUE_FULL');
    // 60 items in 6 batches at one call a second.
    expect(refusal?.retryAfterSeconds).toBeCloseTo(6, 6);
  });

  it('takes an item whose deadline passed while queued out of its batch before dispatch (504)', async () => {
    const { downstream, submit, sink } = setupBatcher({ batchMaxSize: 1, maxInflightBatches: 1 });
    submit(1);
    submit(2, { timeoutMs: 50 });
    submit(3);
    await vi.advanceTimersByTimeAsync(50);
    expect(sink.of(2)?.error?.code).toBe('SIDECAR_ERR_DEADLINE_EXCEEDED');
    downstream.calls[0].echo();
    await settle();
    expect(downstream.calls.map((call) => call.items)).toEqual([[{ id: 1 }], [{ id: 3 }]]);
  });

  it('never sends an item whose deadline passed by the time its batch leaves', async () => {
    const { downstream, submit, sink } = setupBatcher({ batchMaxWaitMs: 10 });
    submit(1, { timeoutMs: 10 });
    await vi.advanceTimersByTimeAsync(10);
    expect(sink.of(1)?.error?.code).toBe('SIDECAR_ERR_DEADLINE_EXCEEDED');
    expect(downstream.calls).toHaveLength(0);
  });

  it('answers 504 at the deadline of an item in flight, and keeps the call and its slot until the downstream answers', async () => {
    const { downstream, submit, sink, batcher } = setupBatcher({ batchMaxSize: 1, maxInflightBatches: 1 });
    submit(1, { timeoutMs: 100 });
    await settle();
    await vi.advanceTimersByTimeAsync(100);
    expect(sink.of(1)?.error?.code).toBe('SIDECAR_ERR_DEADLINE_EXCEEDED');
    // The legacy system is still working on it: the call runs on and holds its slot (ADR 0019).
    expect(downstream.calls[0].request.signal.aborted).toBe(false);
    expect(batcher.stats()[0].inflight).toBe(1);
    submit(2);
    await settle();
    expect(downstream.calls).toHaveLength(1);
    downstream.calls[0].echo();
    await settle();
    expect(downstream.calls).toHaveLength(2);
    downstream.calls[1].echo();
    await settle();
    expect(batcher.stats()[0].inflight).toBe(0);
    expect(sink.of(1)?.error?.code).toBe('SIDECAR_ERR_DEADLINE_EXCEEDED');
    expect(sink.of(2)?.result).toEqual({ echo: { id: 2 } });
    expect(sink.answers).toHaveLength(2);
  });

  it('fails every item of a failed batch and only that batch', async () => {
    const { downstream, submit, sink } = setupBatcher({ batchMaxSize: 2 });
    for (let id = 1; id <= 4; id++) submit(id);
    await settle();
    const error = Object.assign(new Error('boom'), { code: 'SIDECAR_ERR_DOWNSTREAM_STATUS', statusCode: 502 });
    downstream.calls[0].answer({ ok: false, status: 500, error });
    downstream.calls[1].echo();
    await settle();
    expect([1, 2].map((id) => sink.of(id)?.error?.code)).toEqual(['SIDECAR_ERR_DOWNSTREAM_STATUS', 'SIDECAR_ERR_DOWNSTREAM_STATUS']);
    expect([3, 4].map((id) => sink.of(id)?.result)).toEqual([{ echo: { id: 3 } }, { echo: { id: 4 } }]);
  });

  it('contains an error thrown while handling a batch result to that batch', async () => {
    const { downstream, submit, sink, batcher } = setupBatcher({ batchMaxSize: 1 });
    submit(1);
    submit(2);
    await settle();
    // results is not iterable like an array should be: handling it throws.
    downstream.calls[0].answer({ ok: true, status: 200, results: null as unknown as unknown[] });
    downstream.calls[1].echo();
    await settle();
    expect(sink.of(1)?.error?.code).toBe('SIDECAR_ERR_INTERNAL');
    expect(sink.of(2)?.result).toEqual({ echo: { id: 2 } });
    expect(submit(3)).toBeNull();
    expect(batcher.stats()[0].inflight).toBe(1);
  });

  it('drains: sends the partial batch at once with trigger drain and finishes when all are answered', async () => {
    const { downstream, submit, sink, batcher } = setupBatcher({ shardCount: 2 });
    submit(1, { shard: 0 });
    submit(2, { shard: 1 });
    let drained = false;
    const drain = batcher.drain().then(() => (drained = true));
    expect(submit(3)?.code).toBe('SIDECAR_ERR_DRAINING');
    await settle();
    expect(downstream.calls).toHaveLength(2);
    downstream.calls[0].echo();
    await settle();
    expect(drained).toBe(false);
    downstream.calls[1].echo();
    await drain;
    expect(sink.answers.map((answer) => answer.batch?.trigger)).toEqual(['drain', 'drain']);
  });

  it('with ISOLATE_FAILED_BATCHES, bisects a failed batch ahead of waiting batches, within MAX_INFLIGHT_BATCHES, and drains only after', async () => {
    const { downstream, submit, sink, batcher } = setupBatcher({ batchMaxSize: 4, maxInflightBatches: 1, isolateFailedBatches: true });
    for (let id = 1; id <= 8; id++) submit(id); // two batches: 1-4 in flight, 5-8 waiting
    await settle();
    const status = Object.assign(new Error('boom'), { code: 'SIDECAR_ERR_DOWNSTREAM_STATUS', statusCode: 502 });
    const fail = (index: number) => downstream.calls[index].answer({ ok: false, status: 500, error: status });
    let drained = false;
    const drain = batcher.drain().then(() => (drained = true));
    fail(0);
    await settle();
    // The halves of 1-4 leave before 5-8, one at a time; the halves wait as items again.
    expect(downstream.calls.map((call) => call.items.length)).toEqual([4, 2]);
    expect(batcher.stats()[0]).toMatchObject({ shard: 0, waiting: 6, inflight: 1 });
    expect(downstream.calls[1].request.batchId).toBe(`${downstream.calls[0].request.batchId}.1`);
    downstream.calls[1].echo(); // 1, 2
    await settle();
    fail(2); // 3, 4 fail together: bisected again
    await settle();
    fail(3); // 3 fails alone
    await settle();
    downstream.calls[4].echo(); // 4
    await settle();
    expect(downstream.calls.map((call) => call.items)).toEqual([
      [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }],
      [{ id: 1 }, { id: 2 }],
      [{ id: 3 }, { id: 4 }],
      [{ id: 3 }],
      [{ id: 4 }],
      [{ id: 5 }, { id: 6 }, { id: 7 }, { id: 8 }],
    ]);
    expect(sink.of(3)?.error?.code).toBe('SIDECAR_ERR_DOWNSTREAM_STATUS');
    expect([1, 2, 4].map((id) => sink.of(id)?.result)).toEqual([1, 2, 4].map((id) => ({ echo: { id } })));
    expect(sink.of(4)?.batch?.bisectDepth).toBe(2);
    expect(drained).toBe(false);
    downstream.calls[5].echo();
    await drain;
    expect(downstream.maxInflight).toBe(1);
    expect(sink.answers).toHaveLength(8);
  });

  it('does not bisect a connection error even with ISOLATE_FAILED_BATCHES', async () => {
    const { downstream, submit, sink } = setupBatcher({ batchMaxSize: 2, isolateFailedBatches: true });
    submit(1);
    submit(2);
    await settle();
    const error = Object.assign(new Error('reset'), { code: 'SIDECAR_ERR_DOWNSTREAM_UNREACHABLE', statusCode: 502 });
    downstream.calls[0].answer({ ok: false, status: 0, error });
    await settle();
    expect(downstream.calls).toHaveLength(1);
    expect([1, 2].map((id) => sink.of(id)?.error?.code)).toEqual(['SIDECAR_ERR_DOWNSTREAM_UNREACHABLE', 'SIDECAR_ERR_DOWNSTREAM_UNREACHABLE']);
  });

  it('keeps nothing per batch once its call has ended: no child actors, nothing in flight', async () => {
    const { downstream, submit, batcher } = setupBatcher({ batchMaxSize: 1 });
    for (let id = 1; id <= 20; id++) submit(id);
    for (let round = 0; round < 10; round++) {
      await settle();
      downstream.calls.forEach((call) => call.echo());
    }
    await settle();
    expect(downstream.calls).toHaveLength(20);
    const supervisor = (batcher as unknown as { supervisor: { getSnapshot(): { children: Record<string, { getSnapshot(): { children: object } }> } } }).supervisor;
    expect(Object.keys(supervisor.getSnapshot().children['shard-0'].getSnapshot().children)).toHaveLength(0);
    expect(batcher.stats()[0]).toMatchObject({ shard: 0, waiting: 0, inflight: 0 });
  });

  it('lets a batch whose call has ended go of its items, so whatever still holds the batch holds no caller (ADR 0013)', async () => {
    const { downstream, submit, sink } = setupBatcher();
    submit(1);
    submit(2);
    submit(3);
    await settle();
    downstream.calls[0].echo();
    await settle();
    const finished = sink.of(1)?.batch;
    expect(finished?.items).toEqual([]);
    expect(sink.of(3)?.result).toEqual({ echo: { id: 3 } });
  });
});
