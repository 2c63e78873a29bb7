/**
 * What one in-flight batch does, start to end: send its body downstream, then
 * settle every item — result i to the caller of item i when the answer passed
 * every check, the batch's error to all of them otherwise. The shard starts one
 * per batch as a plain promise (ADR 0010) that resolves with an outcome once
 * every item is settled; it never rejects, so a failure in here cannot take the
 * shard down.
 *
 * Two opt-in policies change what "settle" means:
 * - ITEM_ERROR_FIELD: a result that is a JSON object carrying that field (not
 *   null) fails its own caller with 422 SIDECAR_ERR_ITEM_REJECTED; the other
 *   results of the batch are answered as usual.
 * - ISOLATE_FAILED_BATCHES: a batch the downstream answered with a non-2xx
 *   status or a body that fails the checks is not failed whole: its items go
 *   back to the shard in two halves (ShardQueue.bisect), sent again like any
 *   batch, recursively, so that only an item that fails alone gets the 502.
 *   Connection errors and timeouts fail the batch as before: the downstream is
 *   down, not the items (ADR 0014).
 */
import { performance as perfHooks } from 'node:perf_hooks';
import { SidecarErrors, type SidecarError } from '../errors.ts';
import type { Downstream } from '../downstream/client.ts';
import type { Batch, BatchObserver, BatchOutcome } from './batch.ts';
import type { ShardQueue } from './shard-queue.ts';

/** How a shard settles its batches (fixed at startup). */
export interface DispatchPolicy {
  /** ITEM_ERROR_FIELD, or null: every result passes through unchanged. */
  readonly itemErrorField: string | null;
  /** ISOLATE_FAILED_BATCHES. */
  readonly isolateFailedBatches: boolean;
}

export const DEFAULT_POLICY: DispatchPolicy = Object.freeze({ itemErrorField: null, isolateFailedBatches: false });

export interface DispatchInput {
  readonly batch: Batch;
  readonly queue: ShardQueue;
  readonly downstream: Downstream;
  readonly observer: BatchObserver;
  readonly policy?: DispatchPolicy;
}

/** The longest `message` of a 422 taken from a result's error field. */
const ITEM_ERROR_MAX_CHARS = 200;

export async function dispatchBatch({ batch, queue, downstream, observer, policy = DEFAULT_POLICY }: DispatchInput): Promise<BatchOutcome> {
  const outcome = await sendAndSettle(batch, queue, downstream, observer, policy);
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
  policy: DispatchPolicy,
): Promise<BatchOutcome> {
  const items = batch.items;
  let status = 0;
  try {
    const headers = observer.dispatching(batch);
    batch.sentAt = queue.now();
    batch.loopActiveAtSend = perfHooks.eventLoopUtilization().active;
    if (batch.firstSentAt < 0) batch.firstSentAt = batch.sentAt;
    const answer = await downstream.send({
      batchId: batch.id,
      shard: batch.shard,
      body: batch.encode(),
      count: items.length,
      deadline: batch.latestDeadline(),
      signal: batch.signal as AbortSignal,
      headers,
    });
    batch.downstreamMs = answer.durationMs;
    batch.answered = true;
    status = answer.status;
    if (answer.ok) {
      const results = answer.results;
      const field = policy.itemErrorField;
      for (let i = 0; i < items.length; i++) {
        const rejection = field === null ? null : itemRejection(results[i], field);
        if (rejection === null) queue.resolve(items[i], results[i], batch);
        else queue.reject(items[i], rejection, batch);
      }
      return outcome(batch, status, null);
    }
    const result = outcome(batch, status, answer.error);
    if (policy.isolateFailedBatches && batch.live > 1 && isItemsFault(answer.error)) queue.bisect(batch);
    else for (const item of items) queue.reject(item, answer.error, batch);
    return result;
  } catch (cause) {
    // Containment: whatever broke while handling this batch fails its own
    // callers (those not answered yet) and nothing else.
    const error = new SidecarErrors.SIDECAR_ERR_INTERNAL(cause instanceof Error ? cause.message : String(cause));
    for (const item of items) queue.reject(item, error, batch);
    return outcome(batch, status, error);
  }
}

/**
 * Could the items be the cause? A status or a body the checks refused may come
 * from one bad item; a connection error or a timeout says the downstream is
 * down (or slow), and resending halves would only multiply the load on it.
 */
function isItemsFault(error: SidecarError): boolean {
  return error.code === 'SIDECAR_ERR_DOWNSTREAM_STATUS' || error.code === 'SIDECAR_ERR_DOWNSTREAM_BAD_BODY';
}

/** The 422 for a result that is a JSON object carrying `field` (not null); null for any other result. */
function itemRejection(result: unknown, field: string): SidecarError | null {
  if (typeof result !== 'object' || result === null || Array.isArray(result) || !Object.hasOwn(result, field)) return null;
  const value = (result as Record<string, unknown>)[field];
  if (value === null) return null;
  let message = typeof value === 'string' ? value : JSON.stringify(value);
  if (message.length > ITEM_ERROR_MAX_CHARS) {
    // Cut at 200 characters, never inside a surrogate pair.
    const end = isHighSurrogate(message.charCodeAt(ITEM_ERROR_MAX_CHARS - 1)) ? ITEM_ERROR_MAX_CHARS - 1 : ITEM_ERROR_MAX_CHARS;
    message = message.slice(0, end);
  }
  return new SidecarErrors.SIDECAR_ERR_ITEM_REJECTED(message);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function outcome(batch: Batch, status: number, error: BatchOutcome['error']): BatchOutcome {
  return { batchId: batch.id, size: batch.items.length, trigger: batch.trigger, status, error };
}
