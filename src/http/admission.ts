/**
 * Admission control: refuse new work cheaply when the event loop, not the
 * downstream, is the bottleneck (ADR 0012).
 *
 * Under a burst beyond what one core can parse and answer, requests do not
 * wait in the shard queues (those never fill): they wait in socket buffers
 * while the loop works through everything that arrived before them. Nothing
 * inside the process sees that wait except the loop itself, which runs late.
 * So:
 *
 * - Signal. A timer every ADMISSION_SAMPLE_MS measures how late it fired
 *   (the event-loop delay), smoothed over time (an EWMA with a 200 ms time
 *   constant, so a sample's weight grows with the time it covers).
 * - Trigger. Refusing starts only when the smoothed delay is above
 *   ADMISSION_MAX_LOOP_DELAY_MS *and* the last two samples were each later
 *   than it: one GC pause, or one wave of a few thousand requests arriving
 *   at once, makes one late sample and sheds nobody; a saturated loop is
 *   late on every sample.
 * - Law. While overloaded, the share of new requests refused rises by a step
 *   proportional to how far above the limit the delay is (at most +0.3 a
 *   sample), up to half of them; once the smoothed delay is below half the limit the share decays
 *   (×0.7 a sample, then 0); in between it holds. Refusals are spread evenly
 *   (a credit counter, not a coin flip), so a 40 % share refuses exactly 2 of
 *   every 5 arrivals.
 * - Where. In the HTTP server's own request listener, before Fastify builds
 *   its request, reply, logger and routes, and before the body is read: a
 *   refusal is one prepared 503 written with `writeHead` (measured: ADR 0012).
 *   Node then discards the unread body and keeps the connection.
 * - Retry-After. As long as the current overload has lasted, in whole
 *   seconds, 1..60: a caller refused 10 s into an overload is told to stay
 *   away longer than one refused in its first second.
 *
 * Only POST /process is ever refused; probes and /metrics always answer.
 *
 * With INGRESS_THREADS > 1 (ADR 0017) every ingress thread samples its own
 * loop and refuses at its own share, and the batcher thread samples its loop
 * too and imposes its share on every ingress thread (`impose`): a thread
 * refuses at the larger of the two, so a saturated batcher thread sheds work
 * at the doors, before it is parsed and handed over.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { SidecarErrors } from '../errors.ts';
import { retryAfterValue } from './retry-after.ts';

export interface AdmissionOptions {
  /** Smoothed event-loop delay above which requests are refused; 0 turns admission control off. */
  readonly maxLoopDelayMs: number;
  /** How often the delay is sampled. */
  readonly sampleMs: number;
  /** Monotonic clock in ms; tests pass their own. */
  readonly now?: () => number;
  /** Told the new share after each sample that changed it (the batcher thread imposes it on ingress threads). */
  readonly onShare?: (share: number) => void;
}

/** Time constant of the smoothed delay, ms. */
const SMOOTHING_MS = 200;
/** Consecutive late samples (each later than the limit) before refusing starts. */
const LATE_SAMPLES = 2;
/** The largest rise of the refused share in one sample. */
const MAX_STEP = 0.3;
/** Each sample below half the limit keeps this much of the share. */
const DECAY = 0.7;
/**
 * The most that is ever refused. Refusing feeds itself when callers retry at
 * once (a closed loop: every fast 503 brings the next request straight back,
 * so the loop stays late however much is refused); capped, at least half of
 * the arrivals are still served while a refusal costs a fraction of a
 * request's CPU (ADR 0012).
 */
const MAX_SHARE = 0.5;
/** A share below this is treated as none. */
const MIN_SHARE = 0.02;

/** The 503's body, in the Fastify error shape every other answer uses (prepared once). */
const OVERLOADED = new SidecarErrors.SIDECAR_ERR_OVERLOADED();
const OVERLOADED_BODY = Buffer.from(
  JSON.stringify({ statusCode: OVERLOADED.statusCode, code: OVERLOADED.code, error: STATUS_CODES[503], message: OVERLOADED.message }),
);
const OVERLOADED_LENGTH = String(OVERLOADED_BODY.length);

export class Admission {
  /** Share of new /process requests refused now, 0..0.5. */
  shedShare = 0;
  /** Smoothed event-loop delay, ms. */
  delayMs = 0;

  private readonly maxDelayMs: number;
  private readonly sampleMs: number;
  private readonly now: () => number;
  private readonly onShare: ((share: number) => void) | undefined;
  private credit = 0;
  private lastSample = 0;
  private overloadedSince = 0;
  private lateSamples = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The share another thread imposes (the batcher thread's, ADR 0017); 0 otherwise. */
  private imposedShare = 0;
  private imposedSince = 0;

  constructor({ maxLoopDelayMs, sampleMs, now = () => performance.now(), onShare }: AdmissionOptions) {
    this.maxDelayMs = maxLoopDelayMs;
    this.onShare = onShare;
    this.sampleMs = sampleMs;
    this.now = now;
    this.lastSample = now();
  }

  get enabled(): boolean {
    return this.maxDelayMs > 0;
  }

  /** Starts sampling (nothing when disabled). The timer never keeps the process alive. */
  start(): this {
    if (!this.enabled || this.timer !== null) return this;
    this.lastSample = this.now();
    // One Timeout for the process's life, re-armed with refresh(): no timer object per sample.
    this.timer = setTimeout(() => {
      this.observe(this.now());
      this.timer?.refresh();
    }, this.sampleMs);
    this.timer.unref();
    return this;
  }

  /** One sample taken at `now` (the timer's, or a test's). */
  observe(now: number): void {
    const elapsed = now - this.lastSample;
    const late = Math.max(0, elapsed - this.sampleMs);
    this.lastSample = now;
    this.delayMs += (1 - Math.exp(-elapsed / SMOOTHING_MS)) * (late - this.delayMs);
    const limit = this.maxDelayMs;
    this.lateSamples = late > limit ? this.lateSamples + 1 : 0;
    const before = this.shedShare;
    if (this.delayMs > limit && (this.shedShare > 0 || this.lateSamples >= LATE_SAMPLES)) {
      if (this.shedShare === 0) this.overloadedSince = now;
      this.shedShare = Math.min(MAX_SHARE, this.shedShare + Math.min(MAX_STEP, (0.1 * this.delayMs) / limit));
    } else if (this.delayMs < limit / 2 && this.shedShare > 0) {
      this.shedShare *= DECAY;
      if (this.shedShare < MIN_SHARE) {
        this.shedShare = 0;
        this.credit = 0;
      }
    }
    if (this.shedShare !== before) this.onShare?.(this.shedShare);
  }

  /** Refuse at least `share` from now on (the batcher thread's own share; 0 lifts it). */
  impose(share: number): void {
    if (share > 0 && this.imposedShare === 0) this.imposedSince = this.now();
    this.imposedShare = share;
    if (share === 0 && this.shedShare === 0) this.credit = 0;
  }

  /** The share refused now: this loop's, or the one imposed on it if larger. */
  get share(): number {
    return this.shedShare > this.imposedShare ? this.shedShare : this.imposedShare;
  }

  /** Should this arrival be refused? Spreads refusals evenly at the current share. */
  refuse(): boolean {
    const share = this.share;
    if (share === 0) return false;
    this.credit += share;
    if (this.credit < 1) return false;
    this.credit -= 1;
    return true;
  }

  /** Seconds a refused caller should wait: how long this overload has lasted, 1..60. */
  retryAfter(): string {
    const since = this.shedShare > 0 ? this.overloadedSince : this.imposedSince;
    return retryAfterValue((this.now() - since) / 1000);
  }

  /**
   * Wraps the HTTP server's request listener (Fastify's `serverFactory`): a
   * POST /process that arrives while the share is above zero may get the
   * prepared 503 here, before Fastify sees it. `onRefused` counts it.
   */
  guard(
    handler: (request: IncomingMessage, response: ServerResponse) => void,
    path: string,
    accepting: () => boolean,
    onRefused: () => void,
  ): (request: IncomingMessage, response: ServerResponse) => void {
    if (!this.enabled) return handler;
    return (request, response) => {
      // Cheapest test first: the share is 0 whenever the loops keep up.
      if ((this.shedShare > 0 || this.imposedShare > 0) && request.method === 'POST' && isPath(request.url, path) && accepting() && this.refuse()) {
        onRefused();
        response.writeHead(503, [
          'content-type',
          'application/json; charset=utf-8',
          'content-length',
          OVERLOADED_LENGTH,
          'retry-after',
          this.retryAfter(),
        ]);
        response.end(OVERLOADED_BODY);
        return;
      }
      handler(request, response);
    };
  }
}

/** `/process` or `/process?...` (the route Fastify would match). */
function isPath(url: string | undefined, path: string): boolean {
  if (url === undefined || !url.startsWith(path)) return false;
  return url.length === path.length || url.charCodeAt(path.length) === 0x3f; // '?'
}
