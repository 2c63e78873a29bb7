/**
 * Shard actor: the control half of one shard (its data lives in ShardQueue).
 *
 *            batch.opened                after batchWindow (seal 'time')
 *   ┌─────────────┐ ─────────► ┌──────────┐ ─────────────────────┐
 *   │ collecting. │            │collecting│   batch.sealed        │
 *   │    idle     │ ◄───┐      │ .filling │ ─────────────────┐    │
 *   └─────────────┘     │      └──────────┘                  ▼    ▼
 *          ▲            │ open batch empty            ┌─────────────┐
 *          │            └──────────────────────────── │ dispatching │ (transient)
 *          └── batch done (slot freed) ─────────────► └─────────────┘
 *                                 open batch has items ──► collecting.filling
 *
 *   any collecting state ── shard.drain ──► draining ── queue empty, nothing in flight ──► drained (final)
 *
 * Algorithm:
 * - Items never pass through the machine. ShardQueue takes them and signals only
 *   state changes: `batch.opened` (first item of an empty shard: start the
 *   window) and `batch.sealed` (the size or byte cap sealed a batch: dispatch
 *   at once, not on a timer tick).
 * - The time trigger is `after: batchWindow` in `filling`. The delay is counted
 *   from the open batch's first item, not from entering the state, so passing
 *   through `dispatching` and back (a finished batch freed a slot) never
 *   stretches the window into a debounce.
 * - `dispatching` spawns one `sendBatch` child per ready batch while fewer than
 *   MAX_INFLIGHT_BATCHES are in flight (pipelined dispatch: the shard keeps
 *   collecting meanwhile). Children are spawned, not invoked, so they outlive
 *   the state that started them; each is stopped when it reports done, so
 *   `snapshot.children` does not grow.
 * - `draining` seals the partial batch (trigger 'drain'), dispatches as slots
 *   free, and is final once nothing waits and nothing is in flight. The ingress
 *   refuses new items before drain is sent (see batcher.ts).
 *
 * Invariants: `context.inflight` equals the number of live children and never
 * exceeds MAX_INFLIGHT_BATCHES; ready batches leave in the order they were
 * sealed; sendBatch never rejects, and an error event is handled anyway so a
 * bug fails one batch, not the shard.
 */
import { enqueueActions, fromPromise, setup, type ActorRefFrom } from 'xstate';
import { SidecarErrors } from '../errors.ts';
import type { Downstream } from '../downstream/client.ts';
import type { BatchObserver, BatchOutcome } from './batch.ts';
import { dispatchBatch, type DispatchInput } from './dispatch-batch.ts';
import type { ShardQueue, ShardSignal } from './shard-queue.ts';

export interface ShardInput {
  readonly queue: ShardQueue;
  readonly downstream: Downstream;
  readonly observer: BatchObserver;
  readonly batchMaxWaitMs: number;
  readonly maxInflightBatches: number;
}

interface ShardContext extends ShardInput {
  readonly inflight: number;
}

export type ShardEvent =
  | ShardSignal
  | { readonly type: 'shard.drain' }
  | { readonly type: `xstate.done.actor.${string}`; readonly actorId: string; readonly output: BatchOutcome }
  | { readonly type: `xstate.error.actor.${string}`; readonly actorId: string; readonly error: unknown };

export interface ShardOutput {
  readonly index: number;
}

export const shardMachine = setup({
  types: {
    context: {} as ShardContext,
    input: {} as ShardInput,
    events: {} as ShardEvent,
    output: {} as ShardOutput,
  },
  actors: {
    sendBatch: fromPromise<BatchOutcome, DispatchInput>(({ input }) => dispatchBatch(input)),
  },
  guards: {
    hasOpenBatch: ({ context }) => context.queue.openedAt !== null,
    isDrained: ({ context }) => context.queue.isEmpty && context.inflight === 0,
  },
  delays: {
    batchWindow: ({ context }) => {
      const openedAt = context.queue.openedAt ?? context.queue.now();
      return Math.max(0, openedAt + context.batchMaxWaitMs - context.queue.now());
    },
  },
  actions: {
    attachQueue: ({ context, self }) => context.queue.attach(self),
    sealOnTime: ({ context }) => context.queue.seal('time'),
    sealOnDrain: ({ context }) => context.queue.seal('drain'),
    dispatchReady: enqueueActions(({ context, enqueue }) => {
      const { queue, downstream, observer, maxInflightBatches } = context;
      let inflight = context.inflight;
      while (inflight < maxInflightBatches) {
        const batch = queue.takeReady();
        if (batch === undefined) break;
        enqueue.spawnChild('sendBatch', { id: batch.id, input: { batch, queue, downstream, observer } });
        inflight++;
      }
      if (inflight !== context.inflight) enqueue.assign({ inflight });
    }),
    releaseSlot: enqueueActions(({ context, event, enqueue }) => {
      if (!('actorId' in event)) return;
      const batch = context.queue.finish(event.actorId);
      if (batch !== undefined && event.type.startsWith('xstate.error.actor.')) {
        // sendBatch does not reject; if it ever does, its callers still get an answer.
        const error = new SidecarErrors.SIDECAR_ERR_INTERNAL(String((event as { error: unknown }).error));
        for (const item of batch.items) context.queue.reject(item, error, batch);
      }
      enqueue.stopChild(event.actorId);
      enqueue.assign({ inflight: context.inflight - 1 });
    }),
    stopSweeper: ({ context }) => context.queue.stop(),
  },
}).createMachine({
  id: 'shard',
  context: ({ input }) => ({ ...input, inflight: 0 }),
  entry: 'attachQueue',
  initial: 'collecting',
  states: {
    collecting: {
      initial: 'idle',
      states: {
        idle: {
          on: { 'batch.opened': 'filling' },
        },
        filling: {
          after: {
            batchWindow: { target: '#shard.dispatching', actions: 'sealOnTime' },
          },
        },
      },
      on: {
        'batch.sealed': 'dispatching',
        'xstate.done.actor.*': { target: 'dispatching', actions: 'releaseSlot' },
        'xstate.error.actor.*': { target: 'dispatching', actions: 'releaseSlot' },
        'shard.drain': 'draining',
      },
    },
    dispatching: {
      entry: 'dispatchReady',
      always: [{ guard: 'hasOpenBatch', target: 'collecting.filling' }, { target: 'collecting.idle' }],
    },
    draining: {
      entry: ['sealOnDrain', 'dispatchReady'],
      on: {
        'xstate.done.actor.*': { actions: ['releaseSlot', 'dispatchReady'] },
        'xstate.error.actor.*': { actions: ['releaseSlot', 'dispatchReady'] },
      },
      always: { guard: 'isDrained', target: 'drained' },
    },
    drained: {
      type: 'final',
      entry: 'stopSweeper',
    },
  },
  output: ({ context }) => ({ index: context.queue.index }),
});

export type ShardActor = ActorRefFrom<typeof shardMachine>;
