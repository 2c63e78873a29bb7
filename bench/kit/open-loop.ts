/**
 * The open-loop sender of bench/kit/generator.ts: a schedule of segments at
 * fixed rates (a warm-up, a measured window; or 1,000 req/s, a 20,000 req/s
 * burst, 1,000 req/s again). Request i has an intended send time fixed by the
 * schedule; a 1 ms timer sends every request that is due, whatever happened to
 * the ones before it, and latency counts from the intended time, so a stalled
 * server or a late generator shows in the figures (no coordinated omission;
 * autocannon's rate option is a per-connection quota per second, sent in
 * bursts: ADR 0011). Optionally each request is stamped `x-request-start` at
 * its intended send time, as a load balancer in front stamps on receipt.
 *
 * Per request: the status, whether a 503 carried `retry-after`, and the error
 * code of a request with no HTTP answer, so "every request answered" and "no
 * resets" are judged apart. Results by segment and by second of intended send
 * time. Cheap: one small handler per request, undici's dispatch API, typed arrays.
 */
import { Pool, type Dispatcher } from 'undici';
import { percentiles, type Percentiles } from './stats.ts';

/** `rate` requests a second for `seconds`; `count` requests in all instead of ⌊rate × seconds⌋. */
export interface Segment {
  readonly label: string;
  readonly rate: number;
  readonly seconds: number;
  readonly count?: number;
}

export interface OpenLoopOptions {
  readonly origin: string;
  readonly path: string;
  readonly segments: readonly Segment[];
  readonly bodies: readonly Buffer[];
  readonly connections: number;
  /** How long to wait for the last answers after the last send. */
  readonly drainTimeoutMs: number;
  /** Called when a segment's first request is due. */
  readonly onSegment?: (index: number) => void;
  /** Stamp `x-request-start: <epoch ms>` at each request's intended send time. */
  readonly stamp?: boolean;
}

/** In-time goodput counts 2xx answers within this long of the intended send time. */
export const IN_TIME_MS = 1_000;

/** Outcome counts and latency of a set of requests. */
/**
 * Requests sent; HTTP answers of any status, 2xx, 503 (and those with
 * retry-after), other statuses; requests with no HTTP answer by error code;
 * still unanswered when the drain ended; latency (ms from the intended send
 * time) of every answer and of the 2xx; 2xx within IN_TIME_MS.
 */
export type Outcomes = { readonly [K in 'sent' | 'answered' | 'ok' | 'shed' | 'shedWithRetryAfter' | 'otherStatus' | 'errorCount' | 'unfinished' | 'okInTime']: number } & {
  readonly statuses: Record<string, number>;
  readonly errors: Record<string, number>;
  readonly latencyMs: Percentiles | null;
  readonly okLatencyMs: Percentiles | null;
};

/**
 * Per second of the segment's length: its requests' 2xx (late ones included),
 * those within IN_TIME_MS, and the 2xx to any request that arrived while it
 * lasted (what was served under it). sendLagMs: how late the generator sent.
 */
export type SegmentResult = Outcomes & { readonly label: string; readonly sendLagMs: Percentiles | null } & { readonly [K in 'rate' | 'seconds' | 'goodput' | 'inTimeGoodput' | 'servedPerSecond']: number };

/** One second of the schedule, by intended send time. */
export type SecondResult = { readonly segment: string } & { readonly [K in 'second' | 'sent' | 'ok' | 'shed' | 'errors' | 'unfinished']: number } & { readonly [K in 'p50' | 'p99' | 'max']: number | null };

export interface OpenLoopResult {
  readonly segments: SegmentResult[];
  readonly seconds: SecondResult[];
}

const ERROR = 600;

/** One request's answer: its status, whether a 503 carried retry-after, or its error code. */
class Handler implements Dispatcher.DispatchHandler {
  private status = 0;
  private retryAfter = false;
  private readonly loop: OpenLoop;
  private readonly index: number;

  constructor(loop: OpenLoop, index: number) {
    [this.loop, this.index] = [loop, index];
  }

  onRequestStart(): void {}
  onResponseData(): void {}

  onRequestSent(): void {
    this.loop.written++;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    [this.status, this.retryAfter] = [statusCode, headers['retry-after'] !== undefined];
  }

  onResponseEnd(): void {
    this.loop.settle(this.index, this.status, this.retryAfter, '');
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.loop.settle(this.index, ERROR, false, (error as NodeJS.ErrnoException).code ?? error.name);
  }
}

export class OpenLoop {
  readonly options: OpenLoopOptions;
  readonly total: number;
  /** Requests handed to the pool, written to a socket, and settled so far. */
  sent = 0;
  written = 0;
  settled = 0;

  /** Intended send time of request i, ms after t0; index of each segment's first request (and the total last). */
  private readonly intended: Float64Array;
  private readonly starts: number[] = [];
  private readonly latency: Float64Array;
  private readonly lag: Float64Array;
  private readonly status: Uint16Array;
  private readonly retryAfter: Uint8Array;
  private readonly errorCode: Uint8Array;
  private readonly codes: string[] = [''];
  private readonly pool: Pool;
  private t0 = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private resolveDone: (() => void) | null = null;
  private readonly done: Promise<void>;

  constructor(options: OpenLoopOptions) {
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
    [this.latency, this.lag] = [new Float64Array(total).fill(Number.NaN), new Float64Array(total)];
    [this.status, this.retryAfter, this.errorCode] = [new Uint16Array(total), new Uint8Array(total), new Uint8Array(total)];
    const timeouts = { headersTimeout: 120_000, bodyTimeout: 120_000, connectTimeout: 30_000 };
    this.pool = new Pool(options.origin, { connections: options.connections, pipelining: 1, keepAliveTimeout: 60_000, ...timeouts });
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
        if (this.sent < this.total) this.timer = setTimeout(tick, 1);
        else resolve();
      };
      tick();
    });
  }

  /** Waits for every answer (at most drainTimeoutMs after the last send), then closes the pool. */
  async finish(): Promise<OpenLoopResult> {
    let timeout: NodeJS.Timeout | undefined;
    if (this.settled < this.total) await Promise.race([this.done, new Promise<void>((resolve) => (timeout = setTimeout(resolve, this.options.drainTimeoutMs)))]);
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
    if (++this.settled === this.total) this.resolveDone?.();
  }

  private segmentOf(index: number): number {
    let s = 0;
    while (s + 1 < this.options.segments.length && index >= this.starts[s + 1]!) s++;
    return s;
  }

  private send(index: number): void {
    this.lag[index] = performance.now() - this.t0 - this.intended[index]!;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.stamp === true) headers['x-request-start'] = String(Math.round(performance.timeOrigin + this.t0 + this.intended[index]!));
    const bodies = this.options.bodies;
    this.pool.dispatch({ path: this.options.path, method: 'POST', headers, body: bodies[index % bodies.length]! }, new Handler(this, index));
  }

  /** Outcomes of requests from..to-1 (those not sent count as unfinished). */
  private outcomes(from: number, to: number): Outcomes {
    const statuses: Record<string, number> = {};
    const errors: Record<string, number> = {};
    let ok = 0, shed = 0, shedWithRetryAfter = 0, errorCount = 0, unfinished = 0, okInTime = 0;
    const all: number[] = [];
    const good: number[] = [];
    for (let i = from; i < to; i++) {
      const status = this.status[i]!;
      if (status === 0) unfinished++;
      else if (status === ERROR) {
        errorCount++;
        const code = this.codes[this.errorCode[i]!]!;
        errors[code] = (errors[code] ?? 0) + 1;
      } else {
        all.push(this.latency[i]!);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 200 && status < 300) {
          ok++;
          good.push(this.latency[i]!);
          if (this.latency[i]! <= IN_TIME_MS) okInTime++;
        } else if (status === 503) {
          shed++;
          if (this.retryAfter[i] === 1) shedWithRetryAfter++;
        }
      }
    }
    const sent = Math.max(0, Math.min(to, this.sent) - from);
    const otherStatus = all.length - ok - shed;
    return { sent, answered: all.length, ok, shed, shedWithRetryAfter, otherStatus, statuses, errors, errorCount, unfinished, latencyMs: percentiles(Float64Array.from(all)), okLatencyMs: percentiles(Float64Array.from(good)), okInTime };
  }

  private result(): OpenLoopResult {
    // 2xx answers by the segment whose wall-clock span they arrived in.
    const ends: number[] = [];
    let offset = 0;
    for (const segment of this.options.segments) ends.push((offset += segment.seconds * 1000));
    const served = ends.map(() => 0);
    for (let i = 0; i < this.total; i++) {
      if (this.status[i]! < 200 || this.status[i]! >= 300) continue;
      const s = ends.findIndex((end) => this.intended[i]! + this.latency[i]! < end);
      if (s >= 0) served[s]!++;
    }
    const segments = this.options.segments.map((segment, s): SegmentResult => {
      const [from, to] = [this.starts[s]!, this.starts[s + 1]!];
      const o = this.outcomes(from, to);
      const per = (n: number): number => (segment.seconds > 0 ? n / segment.seconds : 0);
      const sendLagMs = percentiles(this.lag.slice(from, Math.max(from, Math.min(to, this.sent))));
      return { label: segment.label, rate: segment.rate, seconds: segment.seconds, ...o, goodput: per(o.ok), inTimeGoodput: per(o.okInTime), servedPerSecond: per(served[s]!), sendLagMs };
    });
    const seconds: SecondResult[] = [];
    for (let from = 0; from < this.total; ) {
      const second = Math.floor(this.intended[from]! / 1000);
      let to = from;
      while (to < this.total && Math.floor(this.intended[to]! / 1000) === second) to++;
      const o = this.outcomes(from, to);
      const segment = this.options.segments[this.segmentOf(from)]!.label;
      seconds.push({ second, segment, sent: o.sent, ok: o.ok, shed: o.shed, errors: o.errorCount, unfinished: o.unfinished, p50: o.latencyMs?.p50 ?? null, p99: o.latencyMs?.p99 ?? null, max: o.latencyMs?.max ?? null });
      from = to;
    }
    return { segments, seconds };
  }
}
