/**
 * The ingress side of the batcher seam: how a settled item becomes an HTTP
 * answer. Each item's owner is its Fastify reply. A result is written as JSON with
 * `x-batch-id` and `x-shard`; a failure goes through the error handler, which
 * gives it Fastify's error shape.
 *
 * Two layers: `createAnswers` writes an answer from plain figures (payload,
 * batch id, shard, timings), which is all an ingress thread receives from the
 * batcher thread (src/ingress, ADR 0017); `createReplySink` is the ItemSink of
 * single-thread mode, which reads those figures off the item and its batch.
 */
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Batch, Item, ItemSink } from '../actors/batch.ts';
import { SidecarErrors, type SidecarError } from '../errors.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Metrics } from '../telemetry/metrics.ts';

/**
 * Writing one answer failed (its socket is gone, say). The sink is called from
 * inside a shard's actions: it must not throw, or one caller's broken socket
 * would fail a shard and everyone it holds.
 */
function answerFailed(log: Pick<Logger, 'warn'>, reply: FastifyReply, error: unknown): void {
  log.warn({ err: error }, 'could not write an answer');
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
 * The part of `server-timing` that every answer of a batch shares:
 * ", downstream;dur=D, sidecar;dur=". Built once per batch where the answers
 * of a batch are written together.
 */
export function sharedTiming(downstreamMs: number): string {
  return `, downstream;dur=${ms(downstreamMs)}, sidecar;dur=`;
}

/** The shared part for a batch, kept in its sinkSlot once its call has ended. */
function batchTiming(batch: Batch, downstreamMs: number): string {
  if (!batch.answered) return sharedTiming(downstreamMs); // still running: D so far
  const shared = batch.sinkSlot;
  if (typeof shared === 'string') return shared;
  return (batch.sinkSlot = sharedTiming(downstreamMs));
}

export interface ReplySinkOptions {
  /** SERVER_TIMING: answer `server-timing` on answers whose batch was sent. */
  readonly serverTiming: boolean;
  /** Where an answer that could not be written is told. */
  readonly log: Pick<Logger, 'warn'>;
  /** Told each answer's time in the sidecar, once its call has ended (admission control's recent time in the sidecar). */
  readonly onServed?: (ms: number) => void;
}

/** Writes answers to POST /process from the figures of an item's batch. */
export interface Answers {
  readonly serverTiming: boolean;
  /**
   * For an item whose batch was sent: observes sidecar_overhead_seconds when
   * the call has `ended`, and returns the answer's `server-timing` (null with
   * SERVER_TIMING off). `queueMs` is accepted → batch sent, `downstreamMs` the
   * time its items spent downstream, `shared` is sharedTiming(downstreamMs).
   */
  timing(reply: FastifyReply, queueMs: number, downstreamMs: number, ended: boolean, shared: string): string | null;
  /** 200 with the result's JSON text; `timing` from timing(), or null. */
  result(reply: FastifyReply, payload: string, batchId: string, shard: number, timing: string | null): void;
  /** The error in Fastify's shape; `batchId` null for an item never sent, `shard` < 0 for none. */
  error(reply: FastifyReply, error: SidecarError, batchId: string | null, shard: number, timing: string | null): void;
}

export function createAnswers(lifecycle: Lifecycle, metrics: Metrics, { serverTiming, log, onServed }: ReplySinkOptions): Answers {
  return {
    serverTiming,
    /**
     * Time in the sidecar minus the downstream call: from when the server
     * handed the request over (before admission control, Fastify and the
     * body) to now, less the time its items spent in the downstream (with
     * bisection, every call the item went through). With SERVER_TIMING on,
     * the same figures go into the answer's `server-timing`: queue,
     * downstream (D) and sidecar (time in the sidecar − D, what
     * sidecar_overhead_seconds observes), after the edge wait (`edge;dur=E`)
     * when the request carried an edge stamp.
     */
    timing(reply, queueMs, downstreamMs, ended, shared) {
      const elapsed = performance.now() - reply.request.raw.receivedAt;
      if (ended) {
        metrics.overheadSeconds((elapsed - downstreamMs) / 1000);
        onServed?.(elapsed);
      }
      if (!serverTiming) return null;
      const timing = `queue;dur=${ms(queueMs)}${shared}${ms(elapsed - downstreamMs)}`;
      const edge = reply.request.edgeWaitMs;
      return edge < 0 ? timing : `edge;dur=${ms(edge)}, ${timing}`;
    },
    result(reply, payload, batchId, shard, timing) {
      metrics.request('ok');
      try {
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
          batchId,
          'x-shard',
          String(shard),
        ];
        if (timing !== null) headers.push('server-timing', timing);
        if (lifecycle.isClosing) headers.push('connection', 'close');
        response.writeHead(200, headers);
        response.end(payload);
      } catch (error) {
        answerFailed(log, reply, error);
      }
    },
    error(reply, error, batchId, shard, timing) {
      try {
        if (timing !== null) reply.header('server-timing', timing);
        if (batchId !== null) reply.header('x-batch-id', batchId);
        if (shard >= 0) reply.header('x-shard', shard);
        reply.send(error);
      } catch (failure) {
        answerFailed(log, reply, failure);
      }
    },
  };
}

/** The ItemSink of single-thread mode: the item's owner is its Fastify reply. */
export function createReplySink(answers: Answers): ItemSink {
  /** The answer's `server-timing`, for an item whose batch was sent (overhead observed as a side effect). */
  function timing(reply: FastifyReply, item: Item, batch: Batch | null): string | null {
    if (batch === null || batch.firstSentAt < 0) return null;
    const ended = batch.downstreamMs !== 0;
    if (!ended && !answers.serverTiming) return null;
    // The clock is read only for a call still running (a deadline passed mid-call).
    const downstreamMs = batch.downstreamMsAt(batch.answered ? 0 : performance.now());
    return answers.timing(reply, batch.firstSentAt - item.acceptedAt, downstreamMs, ended, batchTiming(batch, downstreamMs));
  }

  const sink: ItemSink = {
    resolve(item: Item, result: unknown, batch: Batch): void {
      let payload: string;
      try {
        // Stringify explicitly: Fastify would send a string result as raw text.
        payload = JSON.stringify(result);
      } catch (error) {
        sink.reject(item, new SidecarErrors.SIDECAR_ERR_INTERNAL(`result cannot be serialised: ${String(error)}`), batch);
        return;
      }
      const reply = item.owner as FastifyReply;
      answers.result(reply, payload, batch.id, batch.shard, timing(reply, item, batch));
    },
    reject(item: Item, error: SidecarError, batch: Batch | null): void {
      const reply = item.owner as FastifyReply;
      answers.error(reply, error, batch === null ? null : batch.id, batch === null ? -1 : batch.shard, timing(reply, item, batch));
    },
  };
  return sink;
}
