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
 * It is bench/segment-loop.ts's SegmentLoop (same sender, same figures) with
 * two segments at one rate: the warm-up, left out of the figures, and the
 * measured window.
 */
import type { Percentiles } from './stats.ts';
import { SegmentLoop, type Segment } from './segment-loop.ts';

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

export class OpenLoop {
  readonly options: OpenLoopOptions;
  readonly total: number;
  readonly warmup: number;
  private readonly loop: SegmentLoop;

  constructor(options: OpenLoopOptions) {
    this.options = options;
    const { rate } = options;
    this.warmup = options.count === undefined ? Math.floor((options.warmupMs * rate) / 1000) : 0;
    const measured = options.count ?? Math.max(1, Math.floor((options.durationMs * rate) / 1000));
    this.total = this.warmup + measured;
    const segments: Segment[] = [];
    if (this.warmup > 0) segments.push({ label: 'warmup', rate, seconds: this.warmup / rate, count: this.warmup });
    segments.push({ label: 'measure', rate, seconds: measured / rate, count: measured });
    const measure = segments.length - 1;
    this.loop = new SegmentLoop({
      origin: options.origin,
      path: options.path,
      segments,
      bodies: options.bodies,
      connections: options.connections,
      drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
      countBatches: true,
      onSegment: (index) => {
        if (index === measure) options.onMeasureStart?.();
      },
    });
  }

  /** Requests handed to the pool so far. */
  get sent(): number {
    return this.loop.sent;
  }

  /** Requests written to a socket so far. */
  get written(): number {
    return this.loop.written;
  }

  /** Requests answered (or failed) so far. */
  get settled(): number {
    return this.loop.settled;
  }

  /** Starts sending; resolves once every request has been handed to the pool. */
  start(): Promise<void> {
    return this.loop.start();
  }

  /** Waits for every answer (at most drainTimeoutMs after the last send), then closes the pool. */
  async finish(): Promise<OpenLoopResult> {
    const measured = (await this.loop.finish()).segments.at(-1)!;
    return {
      offeredRate: this.options.rate,
      warmupRequests: this.warmup,
      measuredRequests: this.total - this.warmup,
      ok: measured.ok,
      statuses: measured.statuses,
      errors: measured.errors,
      unfinished: measured.unfinished,
      achievedRate: measured.servedPerSecond,
      latencyMs: measured.latencyMs,
      sendLagMs: measured.sendLagMs,
      batches: measured.batches,
      batchedItems: measured.batchedItems,
      windowSeconds: measured.seconds,
    };
  }

  close(): Promise<void> {
    return this.loop.close();
  }
}
