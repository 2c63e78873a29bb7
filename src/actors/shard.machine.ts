/**
 * Shard actor: the control half of one shard (its data lives in ShardQueue).
 *
 *               batch.sealed (size, byte cap or window)
 *   collecting ───────────────────────────────────────► dispatching (transient:
 *        ▲                                                │ send ready batches)
 *        └────────────────────────────────────────────────┘
 *        │ batch.done (a slot freed while sealed batches wait): send them, stay
 *        │
 *   collecting ── shard.drain ──► draining ── queue empty, nothing in flight ──► drained (final)
 *
 * Algorithm:
 * - Items never pass through the machine. ShardQueue takes them and signals only
 *   state changes: `batch.sealed` (the size or byte cap sealed a batch at once,
 *   or its window ran out) and `batch.done` (a call ended while sealed batches
 *   wait for a slot, or while draining). The halves of a bisected batch
 *   (ISOLATE_FAILED_BATCHES, ADR 0014) wait for a slot the same way and leave
 *   first.
 * - The time trigger is the queue's own timer, armed when a batch opens for
 *   the batch's own deadline (`closesAt`: its first item's arrival plus the
 *   window when it opened), so a batch sealed by size and the next one opening
 *   in the same tick never stretch a window into a debounce, and a window
 *   change never stretches a batch already open. It was an `after` delay in a
 *   `filling` state until ADR 0013: that took two macrosteps and a scheduled
 *   xstate event per batch (`batch.opened`, then the delay) where one will do.
 * - The window is BATCH_MAX_WAIT_MS, or in adaptive mode what the shard's
 *   BatchWindow says (batch-window.ts, ADR 0016). The controller hears the
 *   outcome of each dispatch round (here) and of each finished call
 *   (ShardQueue.finish): state changes, never items.
 * - Dispatch sends ready batches while the CallGate (call-gate.ts) gives the
 *   shard a slot: MAX_INFLIGHT_BATCHES of its own in fixed mode, a share of
 *   the limit learned from the downstream in adaptive mode (ADR 0018),
 *   pipelined either way: the shard keeps collecting meanwhile. A batch whose
 *   window closed without a slot stays open and keeps filling; the gate wakes
 *   the shard (`batch.done`) when a slot is its turn. Each in-flight batch is a plain promise (dispatchBatch, which never
 *   rejects), not a child actor: a child per batch cost about 0.5 ms of CPU per
 *   batch in xstate (ADR 0010). Its end is an event only when the machine has
 *   something to do about it.
 * - `draining` seals the partial batch (trigger 'drain'), dispatches as slots
 *   free, and is final once nothing waits and nothing is in flight. The ingress
 *   refuses new items before drain is sent (see batcher.ts).
 *
 * Invariants: no more calls in flight than the gate allows (ShardQueue counts
 * the shard's, the gate all of them); ready batches leave in the order they
 * were sealed; an action that throws fails the shard, whose supervisor answers its callers
 * and restarts it.
 */
import { setup } from 'xstate';
import type { Downstream } from '../downstream/client.ts';
import type { BatchObserver } from './batch.ts';
import { dispatchBatch, type DispatchPolicy } from './dispatch-batch.ts';
import type { ShardQueue, ShardSignal } from './shard-queue.ts';

export interface ShardInput {
  readonly queue: ShardQueue;
  readonly downstream: Downstream;
  readonly observer: BatchObserver;
  /** Per-item errors and bisection of failed batches (both off by default). */
  readonly policy?: DispatchPolicy;
}

export type ShardEvent = ShardSignal | { readonly type: 'shard.drain' };

export interface ShardOutput {
  readonly index: number;
}

export const shardMachine = setup({
  types: {
    context: {} as ShardInput,
    input: {} as ShardInput,
    events: {} as ShardEvent,
    output: {} as ShardOutput,
  },
  guards: {
    isDrained: ({ context }) => context.queue.isEmpty && context.queue.inflight.size === 0,
  },
  actions: {
    attachQueue: ({ context, self }) => context.queue.attach(self),
    sealOnDrain: ({ context }) => {
      context.queue.draining = true;
      context.queue.seal('drain');
    },
    dispatchReady: ({ context }) => {
      const { queue, downstream, observer, policy } = context;
      const gate = queue.gate;
      while (queue.waitingSince !== Infinity && gate.tryAcquire(queue)) {
        const batch = queue.takeReady();
        if (batch === undefined) {
          gate.cancel(); // every item of it had expired
          break;
        }
        void dispatchBatch({ batch, queue, downstream, observer, policy }).then((outcome) => queue.finish(batch.id, outcome));
      }
      queue.dispatched();
    },
    stopSweeper: ({ context }) => context.queue.stop(),
  },
}).createMachine({
  id: 'shard',
  context: ({ input }) => input,
  entry: 'attachQueue',
  initial: 'collecting',
  states: {
    collecting: {
      on: {
        'batch.sealed': 'dispatching',
        'batch.done': { actions: 'dispatchReady' },
        'shard.drain': 'draining',
      },
    },
    dispatching: {
      entry: 'dispatchReady',
      always: { target: 'collecting' },
    },
    draining: {
      entry: ['sealOnDrain', 'dispatchReady'],
      on: {
        'batch.done': { actions: 'dispatchReady' },
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
