import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Item, type Batch, type ItemSink } from '../../src/actors/batch.ts';
import { BatchWindow, WINDOW_PERIOD_MS, WINDOW_STEPS, type WindowMode } from '../../src/actors/batch-window.ts';
import { Batcher, type BatcherConfig } from '../../src/actors/batcher.ts';
import { FakeDownstream } from '../support/fake-downstream.ts';

const CAP = 4;

function makeWindow(mode: WindowMode = 'adaptive', minMs = 1, maxMs = 11) {
  return new BatchWindow({ mode, minMs, maxMs, maxInflight: CAP, now: () => Date.now() });
}

/** The window after `n` whole periods with nothing in flight. */
function afterIdlePeriods(window: BatchWindow, n: number): number {
  vi.advanceTimersByTime(n * WINDOW_PERIOD_MS);
  return window.currentMs;
}

describe('BatchWindow', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('is BATCH_MAX_WAIT_MS in fixed mode whatever the calls in flight', () => {
    const window = makeWindow('fixed');
    expect(window.currentMs).toBe(11);
    window.dispatched(CAP, 3);
    expect(afterIdlePeriods(window, 100)).toBe(11);
  });

  it('starts at BATCH_MAX_WAIT_MS and shrinks one step per period while calls in flight stay under half the cap', () => {
    const window = makeWindow();
    expect(window.currentMs).toBe(11);
    window.dispatched(1, 0);
    expect(afterIdlePeriods(window, 1)).toBe(10);
    window.dispatched(CAP / 2 - 1, 0);
    expect(afterIdlePeriods(window, 1)).toBe(9);
    expect(afterIdlePeriods(window, 3)).toBe(6);
  });

  it('stops at BATCH_MIN_WAIT_MS exactly', () => {
    const window = makeWindow('adaptive', 2, 12);
    expect(afterIdlePeriods(window, WINDOW_STEPS + 5)).toBe(2);
  });

  it('creeps up one step per period while calls in flight are between half the cap and the cap', () => {
    const window = makeWindow();
    afterIdlePeriods(window, 6); // 5 ms
    window.dispatched(CAP / 2, 0);
    expect(afterIdlePeriods(window, 1)).toBe(6);
    window.finished(CAP - 1, 0);
    expect(afterIdlePeriods(window, 3)).toBe(9);
    expect(afterIdlePeriods(window, 5)).toBe(11);
  });

  it('does not shrink after a period whose peak reached half the cap, even if the calls ended before it closed', () => {
    const window = makeWindow();
    afterIdlePeriods(window, 3); // 8 ms
    window.dispatched(CAP / 2, 0);
    window.finished(0, 0);
    expect(afterIdlePeriods(window, 1)).toBe(9);
    expect(afterIdlePeriods(window, 1)).toBe(8);
  });

  it('holds in that band when told to (the variant the simulation compares)', () => {
    const window = new BatchWindow({ mode: 'adaptive', minMs: 1, maxMs: 11, maxInflight: CAP, now: () => Date.now(), band: 'hold' });
    afterIdlePeriods(window, 6);
    window.dispatched(CAP / 2, 0);
    expect(afterIdlePeriods(window, 5)).toBe(5);
  });

  it('goes to BATCH_MAX_WAIT_MS at once when calls in flight reach the cap', () => {
    const window = makeWindow();
    expect(afterIdlePeriods(window, WINDOW_STEPS)).toBe(1);
    window.dispatched(CAP, 0);
    expect(window.currentMs).toBe(11);
  });

  it('goes to BATCH_MAX_WAIT_MS when a sealed batch waits for a slot, and does not shrink in that period', () => {
    const window = makeWindow();
    afterIdlePeriods(window, WINDOW_STEPS);
    window.dispatched(1, 2);
    expect(window.currentMs).toBe(11);
    window.finished(0, 0);
    expect(afterIdlePeriods(window, 1)).toBe(11);
    expect(afterIdlePeriods(window, 1)).toBe(10);
  });

  it('doubles under pressure when told to (the variant the simulation compares), by at least a step from zero', () => {
    const window = new BatchWindow({ mode: 'adaptive', minMs: 0, maxMs: 10, maxInflight: CAP, now: () => Date.now(), increase: 'double' });
    expect(afterIdlePeriods(window, WINDOW_STEPS)).toBe(0);
    window.dispatched(CAP, 0);
    expect(window.currentMs).toBe(1);
    window.dispatched(CAP, 0);
    expect(window.currentMs).toBe(2);
  });
});

describe('adaptive window in the shard', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const BASE: BatcherConfig = {
    shardCount: 1,
    batchMaxSize: 2,
    batchMaxWaitMs: 20,
    batchMaxBytes: 1_000,
    maxInflightBatches: 1,
    maxQueuePerShard: 100,
    batchWindowMode: 'adaptive',
    batchMinWaitMs: 2,
    // The window reads the shard's own slots (MAX_INFLIGHT_BATCHES).
    downstreamConcurrency: 'fixed',
  };

  function setup(config: Partial<BatcherConfig> = {}) {
    const downstream = new FakeDownstream();
    const answered: number[] = [];
    const sink: ItemSink = {
      resolve: (item: Item, _result: unknown, _batch: Batch) => answered.push(item.owner as number),
      reject: (item: Item) => answered.push(item.owner as number),
    };
    const batcher = new Batcher({ config: { ...BASE, ...config }, downstream, sink, now: () => Date.now() }).start();
    const submit = (id: number) => {
      const now = Date.now();
      return batcher.submit(0, new Item(Buffer.from(JSON.stringify({ id })), now, now + 10_000, id));
    };
    return { batcher, downstream, submit, answered };
  }

  const settle = () => vi.advanceTimersByTimeAsync(0);

  it('sends a lone item after BATCH_MIN_WAIT_MS once the idle shard has shrunk its window', async () => {
    const { batcher, downstream, submit } = setup();
    expect(batcher.stats()[0].windowMs).toBe(20);
    await vi.advanceTimersByTimeAsync(WINDOW_STEPS * WINDOW_PERIOD_MS);
    expect(batcher.stats()[0].windowMs).toBe(2);
    submit(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(downstream.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(downstream.calls).toHaveLength(1);
  });

  it('widens the window to BATCH_MAX_WAIT_MS as soon as the calls in flight reach MAX_INFLIGHT_BATCHES', async () => {
    const { batcher, downstream, submit } = setup();
    await vi.advanceTimersByTimeAsync(WINDOW_STEPS * WINDOW_PERIOD_MS);
    submit(1);
    submit(2); // sealed by size, sent: 1 call in flight = the cap
    await settle();
    expect(downstream.calls).toHaveLength(1);
    expect(batcher.stats()[0].windowMs).toBe(20);
  });

  it('never stretches a batch already open when the window grows', async () => {
    // Window 4..22 ms (steps of 1.8), 2 slots: one call in flight is half of them.
    const { batcher, downstream, submit } = setup({ batchMinWaitMs: 4, batchMaxWaitMs: 22, maxInflightBatches: 2, batchMaxSize: 10 });
    await vi.advanceTimersByTimeAsync(WINDOW_STEPS * WINDOW_PERIOD_MS); // t = 500, a period starts
    expect(batcher.stats()[0].windowMs).toBe(4);
    submit(1); // closes at 504
    await vi.advanceTimersByTimeAsync(4);
    expect(downstream.calls).toHaveLength(1); // one call in flight for the rest of the period
    await vi.advanceTimersByTimeAsync(43); // t = 547
    submit(2); // opens with the 4 ms window: closes at 551
    await vi.advanceTimersByTimeAsync(3.5); // t = 550.5, the period has ended
    downstream.calls[0].echo(); // the call ends: the period with half the slots busy grows the window
    await settle();
    expect(batcher.stats()[0].windowMs).toBe(5.8);
    await vi.advanceTimersByTimeAsync(0.5); // t = 551: [2] leaves on its own deadline, not 547 + 5.8
    expect(downstream.calls).toHaveLength(2);
    submit(3);
    await vi.advanceTimersByTimeAsync(6);
    expect(downstream.calls.map((call) => call.items)).toEqual([[{ id: 1 }], [{ id: 2 }], [{ id: 3 }]]);
  });

  it('still seals at once by size in adaptive mode', async () => {
    const { downstream, submit } = setup({ maxInflightBatches: 4 });
    submit(1);
    submit(2);
    await settle();
    expect(downstream.calls).toHaveLength(1);
  });
});
