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
import { Pool, type Dispatcher } from 'undici';
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

  private attempt(request: DownstreamRequest): Promise<DownstreamAnswer> {
    const headers = [
      'content-type',
      'application/json',
      'x-batch-id',
      request.batchId,
      'x-shard',
      String(request.shard),
    ];
    if (request.headers !== undefined) for (const name in request.headers) headers.push(name, request.headers[name]);
    return new Promise((resolve) => {
      this.pool.dispatch(
        { path: this.path, method: 'POST', headers, body: request.body },
        new BatchCall(request.count, request.signal, this.timeoutMs, resolve),
      );
    });
  }
}

/**
 * One attempt of one batch call, as an undici dispatch handler: no Readable
 * body stream, no AbortController and no promise per call beyond the one the
 * caller awaits (measured in ADR 0013). The answer's bytes are kept only for a
 * 2xx and decoded once at the end. It settles exactly once: with the checked
 * answer, a status or connection failure, its timeout, or the batch's abort
 * (every item already answered), whichever comes first; a call that is still
 * queued in the pool when its timeout or abort comes is aborted as it starts.
 */
class BatchCall implements Dispatcher.DispatchHandler {
  private readonly started = performance.now();
  private readonly count: number;
  private readonly signal: AbortSignal;
  private readonly timeoutMs: number;
  private readonly resolve: (answer: DownstreamAnswer) => void;
  private readonly timer: NodeJS.Timeout;
  private controller: Dispatcher.DispatchController | null = null;
  private status = 0;
  private chunks: Buffer[] | null = null;
  private settled = false;

  constructor(count: number, signal: AbortSignal, timeoutMs: number, resolve: (answer: DownstreamAnswer) => void) {
    this.count = count;
    this.signal = signal;
    this.timeoutMs = timeoutMs;
    this.resolve = resolve;
    this.timer = setTimeout(this.onTimeout, timeoutMs);
    signal.addEventListener('abort', this.onAbort);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new Error('batch call ended before it started'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
    if (statusCode >= 200 && statusCode <= 299) this.chunks = [];
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // A non-2xx body is read and dropped (the connection stays usable).
    this.chunks?.push(chunk);
  }

  onResponseEnd(): void {
    const status = this.status;
    const chunks = this.chunks;
    if (chunks === null) {
      this.settle(failed(status, new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_STATUS(status), this.started));
      return;
    }
    const text = chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
    this.settle(parseResults(text, this.count, status, performance.now() - this.started));
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const reason = (error as NodeJS.ErrnoException).code ?? error.message;
    this.settle(failed(this.status, new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_UNREACHABLE(reason), this.started));
  }

  private readonly onTimeout = (): void => {
    this.settle(failed(this.status, new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_TIMEOUT(this.timeoutMs), this.started), true);
  };

  /** Every item of the batch has been answered (deadlines): nobody waits for this call. */
  private readonly onAbort = (): void => {
    this.settle(failed(this.status, new SidecarErrors.SIDECAR_ERR_DOWNSTREAM_UNREACHABLE('aborted'), this.started), true);
  };

  /** `stopCall`: the call is still running and must be aborted to free its connection. */
  private settle(answer: DownstreamAnswer, stopCall = false): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.signal.removeEventListener('abort', this.onAbort);
    // undici then reports the abort through onResponseError, which finds it settled.
    if (stopCall && this.controller !== null && !this.controller.aborted) this.controller.abort(new Error('batch call ended'));
    this.resolve(answer);
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
