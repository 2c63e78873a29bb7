/**
 * A constant-rate, open-loop HTTP load generator over an undici Pool.
 *
 * Request i is due at t0 + i/rate, whatever happened to the requests before
 * it; a 1 ms timer sends every request that is due, and each latency is
 * counted from the request's intended send time, not from when it actually
 * left, so a stalled server or a late generator shows up in the figures
 * instead of being hidden (coordinated omission). autocannon cannot do this:
 * its rate options are a per-connection quota per second, sent as fast as
 * possible at the start of each second (node_modules/autocannon/lib/httpClient.js:
 * `reqsMadeThisSecond`, reset by a 1 s interval), i.e. bursts.
 *
 * Cheap on CPU (it shares the machine with what it measures): one small
 * handler object per request, undici's dispatch API (no streams, no promises
 * per request), results in preallocated typed arrays, percentiles by sorting
 * once at the end.
 */
import { Pool, type Dispatcher } from 'undici';
import { percentiles, type Percentiles } from './stats.ts';

export interface OpenLoopOptions {
  /** e.g. http://127.0.0.1:1234 */
  readonly origin: string;
  readonly path: string;
  /** Requests per second. */
  readonly rate: number;
  /** Sent at the rate but left out of the figures. */
  readonly warmupMs: number;
  /** The measured window, after the warm-up. */
  readonly durationMs: number;
  /** Request bodies, sent in turn. */
  readonly bodies: readonly Buffer[];
  /** Upper bound of the pool's connections (opened as needed). */
  readonly connections: number;
  /** Total requests instead of (warmup + duration) × rate. */
  readonly count?: number;
  /** How long to wait for the last answers after the last send. */
  readonly drainTimeoutMs?: number;
  /** Called once, when the first measured request is due. */
  readonly onMeasureStart?: () => void;
}

export interface OpenLoopResult {
  readonly offeredRate: number;
  readonly warmupRequests: number;
  readonly measuredRequests: number;
  /** Measured requests answered 2xx. */
  readonly ok: number;
  /** Measured requests by HTTP status. */
  readonly statuses: Record<string, number>;
  /** Measured requests that failed without an HTTP answer, by error code. */
  readonly errors: Record<string, number>;
  /** Measured requests still unanswered when the drain timeout passed. */
  readonly unfinished: number;
  /** 2xx answers that arrived inside the measured window, per second. */
  readonly achievedRate: number;
  /** Latency of answered measured requests (any status), ms from the intended send time. */
  readonly latencyMs: Percentiles | null;
  /** How late the generator itself sent (actual - intended), ms. */
  readonly sendLagMs: Percentiles | null;
  /** Distinct x-batch-id values among measured answers, and the answers that carried one. */
  readonly batches: number;
  readonly batchedItems: number;
  /** Wall time of the measured window, s. */
  readonly windowSeconds: number;
}

const ERROR = 600;

class Handler implements Dispatcher.DispatchHandler {
  readonly loop: OpenLoop;
  readonly index: number;
  status = 0;

  constructor(loop: OpenLoop, index: number) {
    this.loop = loop;
    this.index = index;
  }

  onRequestStart(): void {}

  onRequestSent(): void {
    this.loop.written++;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = statusCode;
    const batchId = headers['x-batch-id'];
    if (typeof batchId === 'string') this.loop.batch(this.index, batchId);
  }

  onResponseData(): void {}

  onResponseEnd(): void {
    this.loop.settle(this.index, this.status, '');
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const code = (error as NodeJS.ErrnoException).code ?? error.name;
    this.loop.settle(this.index, ERROR, code);
  }
}

export class OpenLoop {
  readonly options: OpenLoopOptions;
  readonly total: number;
  readonly warmup: number;
  /** Requests handed to the pool, written to a socket, and settled so far. */
  sent = 0;
  written = 0;
  settled = 0;

  private readonly pool: Pool;
  private readonly latency: Float64Array;
  private readonly lag: Float64Array;
  private readonly status: Uint16Array;
  private readonly errorCodes = new Map<string, number>();
  private readonly batchIds = new Set<string>();
  private batchedItems = 0;
  private windowOk = 0;
  private t0 = 0;
  private windowStart = 0;
  private windowEnd = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly interval: number;
  private readonly headers = { 'content-type': 'application/json' };
  private resolveDone: (() => void) | null = null;
  private readonly done: Promise<void>;

  constructor(options: OpenLoopOptions) {
    this.options = options;
    this.interval = 1000 / options.rate;
    this.warmup = options.count === undefined ? Math.floor((options.warmupMs * options.rate) / 1000) : 0;
    this.total = options.count ?? this.warmup + Math.max(1, Math.floor((options.durationMs * options.rate) / 1000));
    this.latency = new Float64Array(this.total).fill(Number.NaN);
    this.lag = new Float64Array(this.total);
    this.status = new Uint16Array(this.total);
    this.pool = new Pool(options.origin, {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
      connectTimeout: 30_000,
    });
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Starts sending; resolves once every request has been handed to the pool. */
  start(): Promise<void> {
    this.t0 = performance.now();
    this.windowStart = this.t0 + this.warmup * this.interval;
    this.windowEnd = this.t0 + this.total * this.interval;
    return new Promise((resolve) => {
      const tick = (): void => {
        if (this.closed) return resolve();
        const due = Math.min(this.total, Math.floor((performance.now() - this.t0) / this.interval) + 1);
        while (this.sent < due) this.send(this.sent++);
        if (this.sent >= this.total) {
          this.timer = null;
          resolve();
        } else {
          this.timer = setTimeout(tick, 1);
        }
      };
      tick();
    });
  }

  /** Waits for every answer (at most drainTimeoutMs after the last send), then closes the pool. */
  async finish(): Promise<OpenLoopResult> {
    const drain = this.options.drainTimeoutMs ?? 10_000;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([this.done, new Promise<void>((resolve) => (timeout = setTimeout(resolve, drain)))]);
    clearTimeout(timeout);
    const result = this.result();
    await this.close();
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.pool.destroy().catch(() => undefined);
  }

  /** @internal */
  batch(index: number, batchId: string): void {
    if (index < this.warmup) return;
    this.batchIds.add(batchId);
    this.batchedItems++;
  }

  /** @internal */
  settle(index: number, status: number, code: string): void {
    if (this.closed || this.status[index] !== 0) return;
    const now = performance.now();
    this.status[index] = status;
    this.latency[index] = now - (this.t0 + index * this.interval);
    if (status === ERROR) {
      if (index >= this.warmup) this.errorCodes.set(code, (this.errorCodes.get(code) ?? 0) + 1);
    } else if (status >= 200 && status < 300 && now >= this.windowStart && now <= this.windowEnd) this.windowOk++;
    this.settled++;
    if (this.settled === this.total) this.resolveDone?.();
  }

  private send(index: number): void {
    if (index === this.warmup && this.options.onMeasureStart !== undefined) this.options.onMeasureStart();
    const intended = this.t0 + index * this.interval;
    this.lag[index] = performance.now() - intended;
    const bodies = this.options.bodies;
    this.pool.dispatch(
      { path: this.options.path, method: 'POST', headers: this.headers, body: bodies[index % bodies.length]! },
      new Handler(this, index),
    );
  }

  private result(): OpenLoopResult {
    const measured = this.total - this.warmup;
    const statuses: Record<string, number> = {};
    let ok = 0;
    let answered = 0;
    let unfinished = 0;
    for (let i = this.warmup; i < this.total; i++) {
      const status = this.status[i]!;
      if (status === 0) unfinished++;
      else if (status !== ERROR) {
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 200 && status < 300) ok++;
      }
      if (status !== 0 && status !== ERROR) answered++;
    }
    const latencies = new Float64Array(answered);
    let n = 0;
    for (let i = this.warmup; i < this.total; i++) {
      const status = this.status[i]!;
      if (status !== 0 && status !== ERROR) latencies[n++] = this.latency[i]!;
    }
    const windowSeconds = (this.windowEnd - this.windowStart) / 1000;
    return {
      offeredRate: this.options.rate,
      warmupRequests: this.warmup,
      measuredRequests: measured,
      ok,
      statuses,
      errors: Object.fromEntries(this.errorCodes),
      unfinished,
      achievedRate: windowSeconds > 0 ? this.windowOk / windowSeconds : 0,
      latencyMs: percentiles(latencies),
      sendLagMs: percentiles(this.lag.slice(this.warmup, Math.max(this.warmup, this.sent))),
      batches: this.batchIds.size,
      batchedItems: this.batchedItems,
      windowSeconds,
    };
  }
}
