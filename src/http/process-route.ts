/**
 * POST /process: parse (done by json-body.ts), find the shard key, route,
 * enqueue, and return; the answer is written later by the reply sink. The
 * handler is synchronous and returns nothing: Fastify then waits for
 * `reply.send` without wrapping anything (returning the reply would make it
 * treat the reply as a thenable: listeners and closures per request). It logs
 * nothing (no per-request log lines).
 */
import { errorCodes, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Item } from '../actors/batch.ts';
import type { BatchIntake } from '../actors/batcher.ts';
import { keyBytes, MAX_KEY_BYTES } from '../actors/routing.ts';
import type { Config } from '../config.ts';
import { SidecarErrors } from '../errors.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { edgeWaitMs } from './edge-stamp.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Ms the request waited before the sidecar read it, from its edge stamp; -1 without one. */
    edgeWaitMs: number;
  }
}

/** The one route that takes work. */
export const PROCESS_URL = '/process';

export interface ProcessRouteOptions {
  readonly config: Pick<Config, 'shardKeyField' | 'requestTimeoutMs' | 'requestStartHeader'>;
  readonly intake: BatchIntake;
  readonly lifecycle: Lifecycle;
  /** sidecar_edge_wait_seconds. */
  readonly metrics: Metrics;
  /** Answers the route's errors (and counts their outcomes): src/http/error-handler.ts. */
  readonly errorHandler: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => void;
}

export function registerProcessRoute(app: FastifyInstance, { config, intake, lifecycle, metrics, errorHandler }: ProcessRouteOptions): void {
  const { shardKeyField, requestStartHeader } = config;
  app.decorateRequest('edgeWaitMs', -1);

  /** The shard key's bytes: the x-shard-key header, else the body's SHARD_KEY_FIELD (string or number). */
  function shardKey(request: FastifyRequest): Buffer | undefined {
    const header = request.headers['x-shard-key'];
    if (typeof header === 'string') return keyBytes(header, 'header');
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
    const field = (body as Record<string, unknown>)[shardKeyField];
    if (typeof field === 'string') return keyBytes(field, 'body');
    if (typeof field === 'number') return keyBytes(String(field), 'body');
    return undefined;
  }

  function timeoutMs(request: FastifyRequest): number {
    const header = request.headers['x-timeout-ms'];
    if (header === undefined) return config.requestTimeoutMs;
    const ms = typeof header === 'string' && header.trim() !== '' ? Number(header) : Number.NaN;
    if (!Number.isSafeInteger(ms) || ms <= 0) throw new SidecarErrors.SIDECAR_ERR_INVALID_TIMEOUT();
    return ms < config.requestTimeoutMs ? ms : config.requestTimeoutMs;
  }

  /** The edge wait from the stamp (observed), or 0 without a usable one; the deadline counts from the stamp. */
  function edgeWait(request: FastifyRequest): number {
    if (requestStartHeader === null) return 0;
    const header = request.headers[requestStartHeader];
    if (header === undefined) return 0;
    const waited = edgeWaitMs(header, Date.now());
    if (waited !== waited) return 0; // NaN: unusable, ignored
    request.edgeWaitMs = waited;
    metrics.edgeWaitSeconds(waited / 1000);
    return waited;
  }

  app.post(PROCESS_URL, { errorHandler }, (request: FastifyRequest, reply: FastifyReply): void => {
    if (!lifecycle.acceptsWork) throw new SidecarErrors.SIDECAR_ERR_DRAINING();
    // A POST without a body and without a content-type skips body parsing.
    if (request.rawBody === null) throw new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE('none');
    const key = shardKey(request);
    if (key !== undefined && key.length > MAX_KEY_BYTES) throw new SidecarErrors.SIDECAR_ERR_KEY_TOO_LONG(MAX_KEY_BYTES);
    const now = performance.now();
    const item = new Item(request.rawBody, now, now - edgeWait(request) + timeoutMs(request), reply);
    const span = request.requestSpan; // set only when sampled (request-spans.ts)
    if (span !== null) item.traceLink = span.spanContext();
    const shard = intake.route(key);
    const refusal = intake.submit(shard, item);
    if (refusal !== null) {
      reply.header('x-shard', shard);
      throw refusal;
    }
  });
}
