/**
 * An open-loop generator with a schedule of segments at different rates
 * (e.g. 1,000 req/s for 3 s, 20,000 req/s for 10 s, 1,000 req/s for 5 s), for
 * the burst test of issue 10; bench/open-loop.ts's OpenLoop is this with one
 * rate (a warm-up segment and a measured one).
 *
 * Same method as OpenLoop: request i has an intended send time fixed by the
 * schedule, a 1 ms timer sends every request that is due, and latency counts
 * from the intended time (no coordinated omission). On top of it, per request:
 * the status, whether a 503 carried `retry-after`, and the error code of a
 * request that got no HTTP answer (ECONNRESET, UND_ERR_SOCKET, ...), so that
 * "every request gets an answer" and "no resets" can be judged separately.
 * Results by segment and by second of intended send time.
 *
 * Cheap on CPU for the same reasons as OpenLoop: one small handler object per
 * request, undici's dispatch API, typed arrays, one sort per summary.
 */
import { Pool, type Dispatcher } from 'undici';
import { percentiles, type Percentiles } from './stats.ts';

export interface Segment {
  readonly label: string;
  /** Requests per second. */
  readonly rate: number;
  readonly seconds: number;
  /** Requests in the segment; default ⌊rate × seconds⌋. */
  readonly count?: number;
}

export interface SegmentLoopOptions {
  readonly origin: string;
  readonly path: string;
  readonly segments: readonly Segment[];
  readonly bodies: readonly Buffer[];
  readonly connections: number;
  /** How long to wait for the last answers after the last send. */
  readonly drainTimeoutMs: number;
  /** Called when a segment's first request is due (index into segments). */
  readonly onSegment?: (index: number) => void;
  /** Count the distinct `x-batch-id` values answered to each segment's requests (a Set per segment). */
  readonly countBatches?: boolean;
  /**
   * Stamp each request `x-request-start: <epoch ms>` at its intended send
   * time, as a load balancer in front stamps when it receives a request
   * (SPEC §2): the wait in this generator's connection pool is then the edge
   * wait the sidecar sees.
   */
  readonly stamp?: boolean;
}

/** An answer counts as in time when it came within this long of the request's intended send time. */
export const IN_TIME_MS = 1_000;

/** Outcome counts and latency of a set of requests. */
export interface Outcomes {
  readonly sent: number;
  /** HTTP answers of any status. */
  readonly answered: number;
  readonly ok: number;
  /** 503 answers, and those of them that carried `retry-after`. */
  readonly shed: number;
  readonly shedWithRetryAfter: number;
  /** Answers with a status other than 2xx and 503. */
  readonly otherStatus: number;
  readonly statuses: Record<string, number>;
  /** Requests that got no HTTP answer, by error code (resets, socket errors, timeouts). */
  readonly errors: Record<string, number>;
  readonly errorCount: number;
  /** Still unanswered when the drain timeout passed. */
  readonly unfinished: number;
  /** Latency of every HTTP answer (any status), ms from the intended send time. */
  readonly latencyMs: Percentiles | null;
  /** Latency of 2xx answers only. */
  readonly okLatencyMs: Percentiles | null;
  /** 2xx answers within IN_TIME_MS of the intended send time: what a caller with a 1 s deadline can use. */
  readonly okInTime: number;
}

export interface SegmentResult extends Outcomes {
  readonly label: string;
  readonly rate: number;
  readonly seconds: number;
  /** 2xx answers to this segment's requests, per second of the segment's length (late ones included). */
  readonly goodput: number;
  /**
   * 2xx answers (to any request) that arrived while the segment lasted, per
   * second: what the server served under this segment's load, its backlog not included.
   */
  readonly servedPerSecond: number;
  /** How late the generator itself sent (actual − intended), ms. */
  readonly sendLagMs: Percentiles | null;
  /** With countBatches: distinct `x-batch-id` values among the answers, and the answers that carried one. */
  readonly batches: number;
  readonly batchedItems: number;
}

export interface SecondResult {
  /** Seconds since the start of the schedule (by intended send time). */
  readonly second: number;
  readonly segment: string;
  readonly sent: number;
  readonly ok: number;
  readonly shed: number;
  readonly errors: number;
  readonly unfinished: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

export interface SegmentLoopResult {
  readonly segments: SegmentResult[];
  readonly seconds: SecondResult[];
}

const ERROR = 600;

class Handler implements Dispatcher.DispatchHandler {
  readonly loop: SegmentLoop;
  readonly index: number;
  status = 0;
  retryAfter = false;

  constructor(loop: SegmentLoop, index: number) {
    this.loop = loop;
    this.index = index;
  }

  onRequestStart(): void {}

  onRequestSent(): void {
    this.loop.written++;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = statusCode;
    this.retryAfter = headers['retry-after'] !== undefined;
    const batchId = headers['x-batch-id'];
    if (typeof batchId === 'string') this.loop.batch(this.index, batchId);
  }

  onResponseData(): void {}

  onResponseEnd(): void {
    this.loop.settle(this.index, this.status, this.retryAfter, '');
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.loop.settle(this.index, ERROR, false, (error as NodeJS.ErrnoException).code ?? error.name);
  }
}

export class SegmentLoop {
  readonly options: SegmentLoopOptions;
  readonly total: number;
  /** Requests handed to the pool, written to a socket, and settled so far. */
  sent = 0;
  written = 0;
  settled = 0;

  /** Intended send time of request i, ms after t0. */
  private readonly intended: Float64Array;
  /** Index of the first request of each segment, and total at the end. */
  private readonly starts: number[] = [];
  private readonly latency: Float64Array;
  private readonly lag: Float64Array;
  private readonly status: Uint16Array;
  private readonly retryAfter: Uint8Array;
  private readonly errorCode: Uint8Array;
  private readonly codes: string[] = [''];
  /** With countBatches, per segment: distinct batch ids and answers that carried one. */
  private readonly batchIds: Set<string>[] | null;
  private readonly batchedItems: number[];
  private readonly pool: Pool;
  private readonly headers = { 'content-type': 'application/json' };
  private t0 = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private resolveDone: (() => void) | null = null;
  private readonly done: Promise<void>;

  constructor(options: SegmentLoopOptions) {
    this.options = options;
    let total = 0;
    for (const segment of options.segments) {
      this.starts.push(total);
      total += Math.max(0, segment.count ?? Math.floor(segment.rate * segment.seconds));
    }
    this.starts.push(total);
    this.total = total;
    this.intended = new Float64Array(total);
    let offset = 0;
    options.segments.forEach((segment, s) => {
      for (let i = this.starts[s]!, k = 0; i < this.starts[s + 1]!; i++, k++) this.intended[i] = offset + (k * 1000) / segment.rate;
      offset += segment.seconds * 1000;
    });
    this.latency = new Float64Array(total).fill(Number.NaN);
    this.lag = new Float64Array(total);
    this.status = new Uint16Array(total);
    this.retryAfter = new Uint8Array(total);
    this.errorCode = new Uint8Array(total);
    this.batchIds = options.countBatches === true ? options.segments.map(() => new Set<string>()) : null;
    this.batchedItems = options.segments.map(() => 0);
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

  /** Sends on schedule; resolves once every request has been handed to the pool. */
  start(): Promise<void> {
    this.t0 = performance.now();
    let segment = -1;
    return new Promise((resolve) => {
      const tick = (): void => {
        if (this.closed) return resolve();
        const now = performance.now() - this.t0;
        while (this.sent < this.total && this.intended[this.sent]! <= now) {
          while (segment + 1 < this.options.segments.length && this.sent >= this.starts[segment + 1]!) {
            segment++;
            this.options.onSegment?.(segment);
          }
          this.send(this.sent++);
        }
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
  async finish(): Promise<SegmentLoopResult> {
    let timeout: NodeJS.Timeout | undefined;
    if (this.settled < this.total) {
      await Promise.race([this.done, new Promise<void>((resolve) => (timeout = setTimeout(resolve, this.options.drainTimeoutMs)))]);
    }
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
    if (this.batchIds === null) return;
    const s = this.segmentOf(index);
    this.batchIds[s]!.add(batchId);
    this.batchedItems[s]!++;
  }

  /** @internal */
  settle(index: number, status: number, retryAfter: boolean, code: string): void {
    if (this.closed || this.status[index] !== 0) return;
    this.status[index] = status;
    this.latency[index] = performance.now() - this.t0 - this.intended[index]!;
    if (retryAfter) this.retryAfter[index] = 1;
    if (status === ERROR) {
      let c = this.codes.indexOf(code);
      if (c < 0) c = this.codes.push(code) - 1;
      this.errorCode[index] = Math.min(c, 255);
    }
    this.settled++;
    if (this.settled === this.total) this.resolveDone?.();
  }

  /** The segment request `index` belongs to. */
  private segmentOf(index: number): number {
    let s = 0;
    while (s + 1 < this.options.segments.length && index >= this.starts[s + 1]!) s++;
    return s;
  }

  private send(index: number): void {
    this.lag[index] = performance.now() - this.t0 - this.intended[index]!;
    const bodies = this.options.bodies;
    const headers =
      this.options.stamp === true
        ? { 'content-type': 'application/json', 'x-request-start': String(Math.round(performance.timeOrigin + this.t0 + this.intended[index]!)) }
        : this.headers;
    this.pool.dispatch(
      { path: this.options.path, method: 'POST', headers, body: bodies[index % bodies.length]! },
      new Handler(this, index),
    );
  }

  /** Outcomes of requests from..to-1 (those not sent count as unfinished). */
  private outcomes(from: number, to: number): Outcomes {
    const statuses: Record<string, number> = {};
    const errors: Record<string, number> = {};
    let answered = 0;
    let ok = 0;
    let shed = 0;
    let shedWithRetryAfter = 0;
    let errorCount = 0;
    let unfinished = 0;
    for (let i = from; i < to; i++) {
      const status = this.status[i]!;
      if (status === 0) unfinished++;
      else if (status === ERROR) {
        errorCount++;
        const code = this.codes[this.errorCode[i]!]!;
        errors[code] = (errors[code] ?? 0) + 1;
      } else {
        answered++;
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 200 && status < 300) ok++;
        else if (status === 503) {
          shed++;
          if (this.retryAfter[i] === 1) shedWithRetryAfter++;
        }
      }
    }
    const all = new Float64Array(answered);
    const good = new Float64Array(ok);
    let a = 0;
    let g = 0;
    let okInTime = 0;
    for (let i = from; i < to; i++) {
      const status = this.status[i]!;
      if (status === 0 || status === ERROR) continue;
      all[a++] = this.latency[i]!;
      if (status >= 200 && status < 300) {
        good[g++] = this.latency[i]!;
        if (this.latency[i]! <= IN_TIME_MS) okInTime++;
      }
    }
    return {
      sent: Math.max(0, Math.min(to, this.sent) - from),
      answered,
      ok,
      shed,
      shedWithRetryAfter,
      otherStatus: answered - ok - shed,
      statuses,
      errors,
      errorCount,
      unfinished,
      latencyMs: percentiles(all),
      okLatencyMs: percentiles(good),
      okInTime,
    };
  }

  /** 2xx answers that arrived in each segment's wall-clock window (by intended schedule). */
  private servedBySegment(): number[] {
    const bounds: number[] = [];
    let offset = 0;
    for (const segment of this.options.segments) bounds.push((offset += segment.seconds * 1000));
    const served = bounds.map(() => 0);
    for (let i = 0; i < this.total; i++) {
      const status = this.status[i]!;
      if (status < 200 || status >= 300) continue;
      const at = this.intended[i]! + this.latency[i]!;
      const s = bounds.findIndex((end) => at < end);
      if (s >= 0) served[s]!++;
    }
    return served;
  }

  private result(): SegmentLoopResult {
    const served = this.servedBySegment();
    const segments: SegmentResult[] = this.options.segments.map((segment, s) => {
      const from = this.starts[s]!;
      const to = this.starts[s + 1]!;
      const outcomes = this.outcomes(from, to);
      return {
        label: segment.label,
        rate: segment.rate,
        seconds: segment.seconds,
        ...outcomes,
        goodput: segment.seconds > 0 ? outcomes.ok / segment.seconds : 0,
        servedPerSecond: segment.seconds > 0 ? served[s]! / segment.seconds : 0,
        sendLagMs: percentiles(this.lag.slice(from, Math.max(from, Math.min(to, this.sent)))),
        batches: this.batchIds?.[s]!.size ?? 0,
        batchedItems: this.batchedItems[s]!,
      };
    });
    const seconds: SecondResult[] = [];
    let from = 0;
    while (from < this.total) {
      const second = Math.floor(this.intended[from]! / 1000);
      let to = from;
      while (to < this.total && Math.floor(this.intended[to]! / 1000) === second) to++;
      const o = this.outcomes(from, to);
      seconds.push({
        second,
        segment: this.options.segments[this.segmentOf(from)]!.label,
        sent: o.sent,
        ok: o.ok,
        shed: o.shed,
        errors: o.errorCount,
        unfinished: o.unfinished,
        p50: o.latencyMs?.p50 ?? null,
        p99: o.latencyMs?.p99 ?? null,
        max: o.latencyMs?.max ?? null,
      });
      from = to;
    }
    return { segments, seconds };
  }
}
