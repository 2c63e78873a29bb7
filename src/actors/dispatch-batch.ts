/**
 * What one in-flight batch does, start to end: send its body downstream, then
 * settle every item — result i to the caller of item i when the answer passed
 * every check, the batch's error to all of them otherwise. The shard starts one
 * per batch as a plain promise (ADR 0010) that resolves with an outcome once
 * every item is settled; it never rejects, so a failure in here cannot take the
 * shard down.
 */
import { SidecarErrors } from '../errors.ts';
import type { Downstream } from '../downstream/client.ts';
import type { Batch, BatchObserver, BatchOutcome } from './batch.ts';
import type { ShardQueue } from './shard-queue.ts';

export interface DispatchInput {
  readonly batch: Batch;
  readonly queue: ShardQueue;
  readonly downstream: Downstream;
  readonly observer: BatchObserver;
}

export async function dispatchBatch({ batch, queue, downstream, observer }: DispatchInput): Promise<BatchOutcome> {
  const outcome = await sendAndSettle(batch, queue, downstream, observer);
  try {
    observer.settled(batch, outcome);
  } catch {
    // Telemetry must never cost a batch its answers; they are already sent.
  }
  return outcome;
}

async function sendAndSettle(
  batch: Batch,
  queue: ShardQueue,
  downstream: Downstream,
  observer: BatchObserver,
): Promise<BatchOutcome> {
  const items = batch.items;
  let status = 0;
  try {
    const headers = observer.dispatching(batch);
    batch.sentAt = queue.now();
    if (batch.firstSentAt < 0) batch.firstSentAt = batch.sentAt;
    const answer = await downstream.send({
      batchId: batch.id,
      shard: batch.shard,
      body: batch.encode(),
      count: items.length,
      deadline: batch.latestDeadline(),
      signal: (batch.abort as AbortController).signal,
      headers,
    });
    batch.downstreamMs = answer.durationMs;
    batch.answered = true;
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
