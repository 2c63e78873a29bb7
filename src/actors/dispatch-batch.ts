/**
 * What one in-flight batch does, start to end: send its body downstream, then
 * settle every item — result i to the caller of item i when the answer passed
 * every check, the batch's error to all of them otherwise. It runs as a child
 * actor of its shard (shard.machine.ts spawns one per batch) and resolves with
 * an outcome once every item is settled; it never rejects, so a failure in here
 * cannot take the shard down.
 */
import { SidecarErrors } from '../errors.ts';
import type { Downstream } from '../downstream/client.ts';
import type { Batch, BatchOutcome } from './batch.ts';
import type { ShardQueue } from './shard-queue.ts';

export interface DispatchInput {
  readonly batch: Batch;
  readonly queue: ShardQueue;
  readonly downstream: Downstream;
}

export async function dispatchBatch({ batch, queue, downstream }: DispatchInput): Promise<BatchOutcome> {
  const items = batch.items;
  let status = 0;
  try {
    const answer = await downstream.send({
      batchId: batch.id,
      shard: batch.shard,
      body: batch.encode(),
      count: items.length,
      deadline: batch.latestDeadline(),
      signal: (batch.abort as AbortController).signal,
    });
    status = answer.status;
    if (answer.ok) {
      const results = answer.results;
      for (let i = 0; i < items.length; i++) queue.resolve(items[i], results[i], batch);
    } else {
      for (const item of items) queue.reject(item, answer.error, batch);
    }
    return outcome(batch, status, answer.ok ? null : answer.error);
  } catch (cause) {
    // Containment: whatever broke while handling this batch fails its own
    // callers (those not answered yet) and nothing else.
    const error = new SidecarErrors.SIDECAR_ERR_INTERNAL(cause instanceof Error ? cause.message : String(cause));
    for (const item of items) queue.reject(item, error, batch);
    return outcome(batch, status, error);
  }
}

function outcome(batch: Batch, status: number, error: BatchOutcome['error']): BatchOutcome {
  return { batchId: batch.id, size: batch.items.length, trigger: batch.trigger, status, error };
}
