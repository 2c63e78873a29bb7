/**
 * Supervisor actor: owns the SHARD_COUNT shard actors and their shutdown.
 *
 *   running ── supervisor.drain ──► draining ── every shard final ──► stopped (final)
 *
 * - On start it spawns one shard actor per ShardQueue, with id `shard-<i>`.
 * - `supervisor.drain` broadcasts `shard.drain` to every shard, then counts the
 *   shards' done events; it is final only when every shard has reached its own
 *   final state (queue empty, nothing in flight).
 * - A shard that fails (an action threw: a bug) would strand the callers it
 *   holds. The supervisor answers them (500), and while running starts a fresh
 *   shard actor on the same queue; while draining it counts the shard as done.
 *   Past MAX_SHARD_RESTARTS restarts it gives up and fails itself: the batcher
 *   then answers everything and the process exits for its orchestrator to
 *   restart (a bug that fails every time must not loop).
 *
 * Routing an item to a shard is a pure function (routing.ts) applied by the
 * batcher, not an event per item through this actor (see ADR 0002).
 */
import { assign, enqueueActions, setup } from 'xstate';
import { SidecarErrors } from '../errors.ts';
import { shardMachine, type ShardInput } from './shard.machine.ts';

export interface SupervisorInput {
  readonly shards: readonly ShardInput[];
}

interface SupervisorContext extends SupervisorInput {
  readonly finished: number;
  readonly restarts: number;
}

export type SupervisorEvent =
  | { readonly type: 'supervisor.drain' }
  | { readonly type: `xstate.done.actor.${string}`; readonly actorId: string }
  | { readonly type: `xstate.error.actor.${string}`; readonly actorId: string; readonly error: unknown };

export const MAX_SHARD_RESTARTS = 10;

const shardIndex = (actorId: string): number => Number.parseInt(actorId.slice('shard-'.length), 10);

export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    input: {} as SupervisorInput,
    events: {} as SupervisorEvent,
    output: {} as { readonly shards: number; readonly restarts: number },
  },
  actors: { shard: shardMachine },
  guards: {
    allShardsFinished: ({ context }) => context.finished === context.shards.length,
    mayRestart: ({ context }) => context.restarts < MAX_SHARD_RESTARTS,
  },
  actions: {
    spawnShards: enqueueActions(({ context, enqueue }) => {
      context.shards.forEach((input, index) => enqueue.spawnChild('shard', { id: `shard-${index}`, input }));
    }),
    broadcastDrain: enqueueActions(({ context, enqueue }) => {
      for (let index = 0; index < context.shards.length; index++) {
        enqueue.sendTo(`shard-${index}`, { type: 'shard.drain' });
      }
    }),
    countFinished: assign({ finished: ({ context }) => context.finished + 1 }),
    answerStranded: ({ context, event }) => {
      if (!('error' in event)) return;
      const queue = context.shards[shardIndex(event.actorId)].queue;
      queue.rejectAll(new SidecarErrors.SIDECAR_ERR_INTERNAL(`shard ${queue.index} failed: ${String(event.error)}`));
    },
    giveUp: ({ event }) => {
      const cause = 'error' in event ? String(event.error) : 'unknown';
      throw new Error(`shard failed again after ${MAX_SHARD_RESTARTS} restarts: ${cause}`);
    },
    restartShard: enqueueActions(({ context, event, enqueue }) => {
      if (!('error' in event)) return;
      const index = shardIndex(event.actorId);
      enqueue.stopChild(event.actorId);
      enqueue.spawnChild('shard', { id: `shard-${index}`, input: context.shards[index] });
      enqueue.assign({ restarts: context.restarts + 1 });
    }),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({ shards: input.shards, finished: 0, restarts: 0 }),
  entry: 'spawnShards',
  initial: 'running',
  states: {
    running: {
      on: {
        'supervisor.drain': 'draining',
        'xstate.error.actor.*': [
          { guard: 'mayRestart', actions: ['answerStranded', 'restartShard'] },
          { actions: ['answerStranded', 'giveUp'] },
        ],
      },
    },
    draining: {
      entry: 'broadcastDrain',
      on: {
        'xstate.done.actor.*': { actions: 'countFinished' },
        'xstate.error.actor.*': { actions: ['answerStranded', 'countFinished'] },
      },
      always: { guard: 'allShardsFinished', target: 'stopped' },
    },
    stopped: { type: 'final' },
  },
  output: ({ context }) => ({ shards: context.shards.length, restarts: context.restarts }),
});
