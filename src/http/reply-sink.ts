/**
 * The ingress side of the batcher seam: how a settled item becomes an HTTP
 * answer. Each item's owner is its Fastify reply. A result is written as JSON with
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

/** What Fastify writes for a JSON payload. */
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Milliseconds with at most one decimal, for `server-timing`. */
function ms(value: number): number {
  // Prints 12 rather than toFixed's 12.0. measured (node 24): building the
  // whole header costs about 0.15 µs, like toFixed, against 60-110 µs of CPU
  // per request; with the header written, bench/micro/server-timing-cost.ts
  // and bench/compare.ts (BASELINE_ENV=SERVER_TIMING=false) find no difference
  // above their noise. The shared middle part is built once per batch.
  return value > 0 ? Math.round(value * 10) / 10 : 0;
}

/**
 * The part of `server-timing` that every answer of an answered batch shares,
 * built once per batch and kept in its sinkSlot: ", downstream;dur=D, sidecar;dur=".
 */
function sharedTiming(batch: Batch, downstreamMs: number): string {
  if (batch.answered) {
    const shared = batch.sinkSlot;
    if (typeof shared === 'string') return shared;
    return (batch.sinkSlot = `, downstream;dur=${ms(downstreamMs)}, sidecar;dur=`);
  }
  // The call is still running (an item whose deadline passed meanwhile): D so far.
  return `, downstream;dur=${ms(downstreamMs)}, sidecar;dur=`;
}

export interface ReplySinkOptions {
  /** SERVER_TIMING: answer `server-timing` on answers whose batch was sent. */
  readonly serverTiming: boolean;
}

export function createReplySink(lifecycle: Lifecycle, metrics: Metrics, { serverTiming }: ReplySinkOptions = { serverTiming: true }): ItemSink {
  /**
   * Time in the sidecar minus the downstream call, for items whose batch's call
   * ended: from Fastify's start of the request (before its body was read and
   * parsed) to now, less the time the call spent in the downstream (with
   * bisection, every call the item went through). With SERVER_TIMING on, the
   * same figures go into the answer's `server-timing`: queue (accepted → its
   * batch sent), downstream (D) and sidecar (time in the sidecar − D, what
   * sidecar_overhead_seconds observes). Answers whose batch was never sent
   * carry neither.
   */
  function observeOverhead(reply: FastifyReply, item: Item, batch: Batch | null): string | null {
    if (batch === null || batch.firstSentAt < 0) return null;
    const elapsed = reply.elapsedTime;
    const ended = batch.downstreamMs !== 0;
    if (!ended && !serverTiming) return null;
    // The clock is read only for a call still running (a deadline passed mid-call).
    const downstreamMs = batch.downstreamMsAt(batch.answered ? 0 : performance.now());
    if (ended) metrics.overheadSeconds((elapsed - downstreamMs) / 1000);
    if (!serverTiming) return null;
    return `queue;dur=${ms(batch.firstSentAt - item.acceptedAt)}${sharedTiming(batch, downstreamMs)}${ms(elapsed - downstreamMs)}`;
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
      metrics.request('ok');
      try {
        const timing = observeOverhead(reply, item, batch);
        const response = reply.raw;
        if (response.headersSent) return; // answered already (Node's request timeout, say)
        // Written straight to Node's response with the headers as one flat
        // array, not through reply.header()/type()/send(): those lower-case
        // each name, parse the content type and build a header object per
        // answer (ADR 0013). The headers are the ones Fastify would write.
        const headers = [
          'content-type',
          JSON_CONTENT_TYPE,
          'content-length',
          String(Buffer.byteLength(payload)),
          'x-batch-id',
          batch.id,
          'x-shard',
          String(batch.shard),
        ];
        if (timing !== null) headers.push('server-timing', timing);
        if (lifecycle.isClosing) headers.push('connection', 'close');
        response.writeHead(200, headers);
        response.end(payload);
      } catch (error) {
        answerFailed(reply, error);
      }
    },
    reject(item: Item, error: SidecarError, batch: Batch | null): void {
      const reply = item.owner as FastifyReply;
      try {
        const timing = observeOverhead(reply, item, batch);
        if (timing !== null) reply.header('server-timing', timing);
        if (batch !== null) reply.header('x-batch-id', batch.id).header('x-shard', batch.shard);
        reply.send(error);
      } catch (failure) {
        answerFailed(reply, failure);
      }
    },
  };
  return sink;
}
