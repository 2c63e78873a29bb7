import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor } from 'xstate';
import { Item, NO_OBSERVER, type Batch, type ItemSink } from '../../src/actors/batch.ts';
import { BatchWindow } from '../../src/actors/batch-window.ts';
import { CallGate } from '../../src/actors/call-gate.ts';
import { ShardQueue } from '../../src/actors/shard-queue.ts';
import { shardMachine } from '../../src/actors/shard.machine.ts';
import { MAX_SHARD_RESTARTS, supervisorMachine } from '../../src/actors/supervisor.machine.ts';
import type { SidecarError } from '../../src/errors.ts';
import { FakeDownstream } from '../support/fake-downstream.ts';

describe('supervisor', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function setup(shardLogic = shardMachine) {
    const answers: { id: number; result?: unknown; code?: string }[] = [];
    const sink: ItemSink = {
      resolve: (item: Item, result: unknown, _batch: Batch) => answers.push({ id: item.owner as number, result }),
      reject: (item: Item, error: SidecarError) => answers.push({ id: item.owner as number, code: error.code }),
    };
    const downstream = new FakeDownstream();
    const gate = new CallGate({ mode: 'fixed', shardCount: 2, maxInflightBatches: 2, batchMaxSize: 3 });
    const queues = [0, 1].map(
      (index) =>
        new ShardQueue({
          index,
          batchMaxSize: 3,
          batchMaxBytes: 1000,
          maxQueue: 10,
          maxQueueWaitMs: Infinity,
          gate,
          batchIdPrefix: 't',
          sink,
          now: () => Date.now(),
          window: new BatchWindow({ mode: 'fixed', minMs: 10, maxMs: 10, maxInflight: 2, now: () => Date.now() }),
        }),
    );
    const supervisor = createActor(supervisorMachine.provide({ actors: { shard: shardLogic } }), {
      input: { shards: queues.map((queue) => ({ queue, downstream, observer: NO_OBSERVER })) },
    }).start();
    const offer = (shard: number, id: number) =>
      queues[shard].offer(new Item(Buffer.from(JSON.stringify({ id })), Date.now(), Date.now() + 10_000, id));
    return { answers, downstream, queues, supervisor, offer };
  }

  it('spawns one shard actor per queue and finishes only when every shard is final', async () => {
    const { downstream, supervisor, offer } = setup();
    expect(Object.keys(supervisor.getSnapshot().children)).toEqual(['shard-0', 'shard-1']);
    offer(0, 1);
    offer(1, 2);
    supervisor.send({ type: 'supervisor.drain' });
    await vi.advanceTimersByTimeAsync(0);
    expect(downstream.calls).toHaveLength(2);
    downstream.calls[0].echo();
    await vi.advanceTimersByTimeAsync(0);
    expect(supervisor.getSnapshot().status).toBe('active');
    downstream.calls[1].echo();
    await vi.advanceTimersByTimeAsync(0);
    expect(supervisor.getSnapshot().status).toBe('done');
  });

  it('answers the callers a failed shard held (500) and restarts it on the same queue', async () => {
    let failures = 1;
    const dispatchReady = shardMachine.implementations.actions.dispatchReady as (args: unknown) => void;
    const flaky = shardMachine.provide({
      actions: {
        dispatchReady: (args) => {
          if (failures-- > 0) throw new Error('bug in an action');
          dispatchReady(args);
        },
      },
    });
    const { answers, downstream, supervisor, offer } = setup(flaky);
    offer(0, 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(answers).toEqual([{ id: 1, code: 'SIDECAR_ERR_INTERNAL' }]);
    expect(supervisor.getSnapshot().context.restarts).toBe(1);
    expect(supervisor.getSnapshot().status).toBe('active');
    offer(0, 2);
    await vi.advanceTimersByTimeAsync(10);
    downstream.calls[0].echo();
    await vi.advanceTimersByTimeAsync(0);
    expect(answers[1]).toEqual({ id: 2, result: { echo: { id: 2 } } });
  });

  it('gives up after MAX_SHARD_RESTARTS restarts of a shard that keeps failing, having answered everyone', async () => {
    const broken = shardMachine.provide({
      actions: {
        dispatchReady: () => {
          throw new Error('bug in an action');
        },
      },
    });
    const { answers, supervisor, offer } = setup(broken);
    const errors: unknown[] = [];
    supervisor.subscribe({ error: (error) => errors.push(error) });
    for (let id = 1; id <= MAX_SHARD_RESTARTS + 1; id++) {
      offer(0, id);
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(supervisor.getSnapshot().status).toBe('error');
    expect(errors).toHaveLength(1);
    expect(answers).toHaveLength(MAX_SHARD_RESTARTS + 1);
    expect(answers.every((answer) => answer.code === 'SIDECAR_ERR_INTERNAL')).toBe(true);
  });
});
