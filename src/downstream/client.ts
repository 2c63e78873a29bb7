/**
 * The one way the sidecar talks to the legacy downstream: POST a batch body to
 * DOWNSTREAM_URL over an undici Pool of kept-alive connections, and check the
 * answer strictly before any caller sees it (2xx, JSON, an array, one result
 * per item). `send` never throws: every failure comes back as an answer with a
 * SidecarError, which the batch's callers then receive.
 *
 * Retries (DOWNSTREAM_RETRIES, default 0 because a legacy service need not be
 * idempotent) cover connection errors and 502/503/504 only, with full-jitter
 * exponential backoff, and never start an attempt after the latest deadline of
 * the items still waiting. undici's RetryHandler knows neither jitter nor our
 * per-item deadlines, hence this small loop (ADR 0005).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Config } from '../config.ts';
import { SidecarErrors, type SidecarError } from '../errors.ts';

export interface DownstreamRequest {
  readonly batchId: string;
  readonly shard: number;
  readonly body: Buffer;
  /** Items in the body: the answer must hold exactly this many results. */
  readonly count: number;
  /** Monotonic ms after which no waiting item would use an answer. */
  readonly deadline: number;
  /** Aborted when no item waits for this call any more. */
  readonly signal: AbortSignal;
  /** Extra headers (trace context). */
  readonly headers?: Readonly<Record<string, string>>;
}

export type DownstreamAnswer = (
  | { readonly ok: true; readonly status: number; readonly results: unknown[] }
  | { readonly ok: false; readonly status: number; readonly error: SidecarError }
) & {
  /**
   * Time spent in downstream calls: from each attempt's request until its
   * answer was read (parsing and backoff excluded), added up over attempts.
   * What sidecar_overhead_seconds subtracts.
   */
  durationMs: number;
};

export interface Downstream {
  send(request: DownstreamRequest): Promise<DownstreamAnswer>;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

const RETRY_BASE_MS = 50;
const RETRY_CAP_MS = 2000;
const RETRYABLE_STATUS = new Set([502, 503, 504]);

type DownstreamOptions = Pick<
  Config,
  'downstreamUrl' | 'downstreamTimeoutMs' | 'downstreamRetries' | 'shardCount' | 'maxInflightBatches'
>;

export class DownstreamClient implements Downstream {
  private readonly pool: Pool;
  private readonly path: string;
  private readonly timeoutMs: number;
  private readonly retries: number;

  constructor(options: DownstreamOptions) {
    const url = options.downstreamUrl;
    this.path = `${url.pathname}${url.search}`;
    this.timeoutMs = options.downstreamTimeoutMs;
    this.retries = options.downstreamRetries;
    // One connection per batch that may be in flight at once: a batch never
    // queues behind another inside the pool.
    this.pool = new Pool(url.origin, {
      connections: options.shardCount * options.maxInflightBatches,
      pipelining: 1,
      keepAliveTimeout: 30_000,
    });
  }

  async send(request: DownstreamRequest): Promise<DownstreamAnswer> {
    let answer = await this.attempt(request);
    let durationMs = answer.durationMs;
    for (let retry = 1; retry <= this.retries && !answer.ok && isRetryable(answer); retry++) {
      const backoff = Math.random() * Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (retry - 1));
      if (performance.now() + backoff >= request.deadline || request.signal.aborted) break;
      // The wait ends early when no item waits any more (all expired).
      const waited = await sleep(backoff, true, { ref: false, signal: request.signal }).catch(() => false);
      if (!waited) break;
      answer = await this.attempt(request);
      durationMs += answer.durationMs;
    }
    answer.durationMs = durationMs;
    return answer;
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }

  private async attempt(request: DownstreamRequest): Promise<DownstreamAnswer> {
    // One controller and one timer per attempt, both released when it ends.
    // (AbortSignal.timeout cannot be cancelled: its timer fires after every
    // call and builds a DOMException; AbortSignal.any adds a composite signal.)
    const controller = new AbortController();
    const abort = () => controller.abort();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    request.signal.addEventListener('abort', abort);
    const signal = controller.signal;
    const started = performance.now();
    let status = 0;
    try {
      const response = await this.pool.request({
        path: this.path,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-batch-id': request.batchId,
          'x-shard': String(request.shard),
          ...request.headers,
        },
        body: request.body,
        signal,
      });
      status = response.statusCode;
      if (status < 200 || status > 299) {
        await response.body.dump();
        return failed(status, new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_STATUS(status), started);
      }
      const text = await response.body.text();
      return parseResults(text, request.count, status, performance.now() - started);
    } catch (error) {
      if (timedOut) return failed(status, new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_TIMEOUT(this.timeoutMs), started);
      const reason = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
      return failed(status, new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_UNREACHABLE(reason), started);
    } finally {
      clearTimeout(timer);
      request.signal.removeEventListener('abort', abort);
    }
  }
}

function failed(status: number, error: SidecarError, started: number): DownstreamAnswer {
  return { ok: false, status, error, durationMs: performance.now() - started };
}

function isRetryable(answer: DownstreamAnswer & { ok: false }): boolean {
  const code = answer.error.code;
  if (code === 'SIDECAR_ERR_DOWNSTREAM_UNREACHABLE') return true;
  return code === 'SIDECAR_ERR_DOWNSTREAM_STATUS' && RETRYABLE_STATUS.has(answer.status);
}

/** Checks the whole answer before any caller sees a result. */
export function parseResults(text: string, count: number, status: number, durationMs: number): DownstreamAnswer {
  const bad = (reason: string): DownstreamAnswer => ({
    ok: false,
    status,
    error: new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_BAD_BODY(reason),
    durationMs,
  });
  let results: unknown;
  try {
    results = JSON.parse(text);
  } catch {
    return bad('body is not JSON');
  }
  if (!Array.isArray(results)) return bad('body is not an array');
  if (results.length !== count) return bad(`${results.length} results for ${count} items`);
  return { ok: true, status, results, durationMs };
}
