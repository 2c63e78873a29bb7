/**
 * The ingress side of the batcher seam: how a settled item becomes an HTTP
 * answer. Each item's owner is its Fastify reply. A result is sent as JSON with
 * `x-batch-id` and `x-shard`; a failure goes through the error handler, which
 * gives it Fastify's error shape.
 */
import type { FastifyReply } from 'fastify';
import type { Batch, Item, ItemSink } from '../actors/batch.ts';
import { SidecarErrors, type SidecarError } from '../errors.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Metrics } from '../telemetry/metrics.ts';

/**
 * Writing one answer failed (its socket is gone, say). The sink is called from
 * inside a shard's actions: it must not throw, or one caller's broken socket
 * would fail a shard and everyone it holds.
 */
function answerFailed(reply: FastifyReply, error: unknown): void {
  reply.log.warn({ err: error }, 'could not write an answer');
  if (!reply.raw.headersSent) reply.raw.destroy();
}

export function createReplySink(lifecycle: Lifecycle, metrics: Metrics): ItemSink {
  /**
   * Time in the sidecar minus the downstream call, for items whose batch's call
   * ended: from Fastify's start of the request (before its body was read and
   * parsed) to now, less the time the call spent in the downstream.
   */
  function observeOverhead(reply: FastifyReply, batch: Batch | null): void {
    if (batch === null || batch.downstreamMs === 0) return;
    metrics.overheadSeconds((reply.elapsedTime - batch.downstreamMs) / 1000);
  }

  const sink: ItemSink = {
    resolve(item: Item, result: unknown, batch: Batch): void {
      const reply = item.owner as FastifyReply;
      let payload: string;
      try {
        // Stringify explicitly: Fastify would send a string result as raw text.
        payload = JSON.stringify(result);
      } catch (error) {
        sink.reject(item, new SidecarErrors.SIDECAR_ERR_INTERNAL(`result cannot be serialised: ${String(error)}`), batch);
        return;
      }
      observeOverhead(reply, batch);
      metrics.request('ok');
      try {
        reply.header('x-batch-id', batch.id).header('x-shard', batch.shard);
        if (lifecycle.isClosing) reply.header('connection', 'close');
        reply.type('application/json').send(payload);
      } catch (error) {
        answerFailed(reply, error);
      }
    },
    reject(item: Item, error: SidecarError, batch: Batch | null): void {
      const reply = item.owner as FastifyReply;
      observeOverhead(reply, batch);
      try {
        if (batch !== null) reply.header('x-batch-id', batch.id).header('x-shard', batch.shard);
        reply.send(error);
      } catch (failure) {
        answerFailed(reply, failure);
      }
    },
  };
  return sink;
}
