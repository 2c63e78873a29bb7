/**
 * Admission control: refuse, cheaply and early, only what cannot be answered
 * in time (ADR 0021, which replaces ADR 0012's event-loop-delay law).
 *
 * The signal is the edge stamp (edge-stamp.ts): how long each request waited
 * before the sidecar read it, as the load balancer in front says. That wait is
 * where a backlog lives when more arrives than the process can parse (in the
 * callers' connection pools, the balancer's queue, the socket buffers), and
 * nothing inside the process can see it: the event loop runs equally late in
 * a saturated closed loop, where every request is answered in time and none
 * should be refused, and under a burst, where the oldest requests are already
 * lost. So:
 *
 * - Expired. A request whose deadline (REQUEST_TIMEOUT_MS, or x-timeout-ms
 *   below it, counted from the stamp) has passed on arrival gets 504 at once:
 *   nobody waits for its answer any more.
 * - Overloaded, as CoDel judges a queue (Nichols and Jacobson; Facebook's
 *   queue CoDel; Uber's QALM): at the end of each INTERVAL_MS, the smallest
 *   edge wait seen in it says whether a standing backlog exists. One slow
 *   request, or one wave of arrivals, leaves some requests with short waits
 *   and the minimum low; a standing backlog delays every one. While the
 *   minimum stood above ADMISSION_MAX_EDGE_WAIT_MS in the last interval, a
 *   request that waited longer than that is refused with 503 and
 *   `retry-after`. The fresher requests are served, and in time: the backlog
 *   is cut from its old end (serving the oldest first, as a FIFO does, would
 *   answer every request late).
 * - Otherwise, admitted: a saturated closed loop has short edge waits (each
 *   caller sends its next request when answered) and is served, not refused.
 *   A request without a usable stamp is always admitted.
 *
 * Where: in the HTTP server's own request listener, before Fastify builds its
 * request, reply, logger and routes, and before the body is read: a refusal is
 * one prepared answer written with `writeHead` (ADR 0012). Node then discards
 * the unread body and keeps the connection. Only POST /process is judged;
 * probes and /metrics always answer.
 *
 * No timer runs: the law moves only when a stamped request arrives, so an
 * idle sidecar spends nothing on it. With INGRESS_THREADS > 1 every ingress
 * thread judges the requests it reads on its own (ADR 0017).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { SidecarErrors, type SidecarError } from '../errors.ts';
import { edgeWaitMs } from './edge-stamp.ts';
import { retryAfterValue } from './retry-after.ts';

export interface AdmissionOptions {
  /** The edge-stamp header, lower case (REQUEST_START_HEADER); null: stamps are ignored, nothing is judged. */
  readonly header: string | null;
  /** REQUEST_TIMEOUT_MS: a request's deadline when x-timeout-ms does not lower it. */
  readonly requestTimeoutMs: number;
  /** ADMISSION_MAX_EDGE_WAIT_MS: the edge wait a standing backlog may reach; 0 turns the refusals off (504s stay). */
  readonly maxEdgeWaitMs: number;
  /** MAX_QUEUE_WAIT_MS: an old request is admitted while its edge wait plus the recent time in the sidecar fit in it. */
  readonly queueBudgetMs?: number;
  /** Epoch ms (the stamp's clock); tests pass their own. */
  readonly now?: () => number;
}

/** What the law makes of one arrival. */
export type Judgement = 'admit' | 'expired' | 'refuse';

/** CoDel's interval: the minimum edge wait over this long says whether a backlog stands. */
export const INTERVAL_MS = 100;
/** Each answer moves the recent time in the sidecar this share of the way (about the last 64 answers). */
const SERVED_WEIGHT = 1 / 64;

/** A prepared answer in the Fastify error shape every other answer uses. */
function prepared(error: SidecarError): { readonly body: Buffer; readonly length: string } {
  const body = Buffer.from(
    JSON.stringify({ statusCode: error.statusCode, code: error.code, error: STATUS_CODES[error.statusCode], message: error.message }),
  );
  return { body, length: String(body.length) };
}
const OVERLOADED = prepared(new SidecarErrors.SIDECAR_ERR_OVERLOADED());
const EXPIRED = prepared(new SidecarErrors.SIDECAR_ERR_DEADLINE_EXCEEDED());

export class Admission {
  /** A standing backlog was seen in the last interval (the law's state; it moves only when a stamped request arrives). */
  private standing = false;

  private readonly header: string | null;
  private readonly requestTimeoutMs: number;
  private readonly maxEdgeWaitMs: number;
  private readonly queueBudgetMs: number;
  /** How long recent answers spent in the sidecar, ms (a moving average over answers). */
  private servedMs = 0;
  private readonly now: () => number;
  private intervalEnd = Number.NEGATIVE_INFINITY;
  private intervalMin = Infinity;
  private overloadedSince = 0;

  constructor({ header, requestTimeoutMs, maxEdgeWaitMs, queueBudgetMs = 0, now = Date.now }: AdmissionOptions) {
    this.header = header === null || header === '' ? null : header.toLowerCase();
    this.requestTimeoutMs = requestTimeoutMs;
    this.maxEdgeWaitMs = maxEdgeWaitMs;
    this.queueBudgetMs = queueBudgetMs;
    this.now = now;
  }

  /** Edge stamps are read (REQUEST_START_HEADER is set). */
  get enabled(): boolean {
    return this.header !== null;
  }

  /**
   * One stamped arrival that waited `edgeMs` at the edge, with a deadline
   * `timeoutMs` after its stamp, received at `now` (epoch ms).
   */
  judge(edgeMs: number, timeoutMs: number, now: number): Judgement {
    if (now >= this.intervalEnd) {
      // An interval with no arrival after the last one (an idle gap) has no backlog in it.
      const standing = now < this.intervalEnd + INTERVAL_MS && this.intervalMin > this.maxEdgeWaitMs;
      if (standing && !this.standing) this.overloadedSince = now;
      this.standing = standing && this.maxEdgeWaitMs > 0;
      this.intervalEnd = now + INTERVAL_MS;
      this.intervalMin = Infinity;
    }
    if (edgeMs < this.intervalMin) this.intervalMin = edgeMs;
    if (edgeMs >= timeoutMs) return 'expired';
    return this.standing && edgeMs > this.oldestAdmittedMs ? 'refuse' : 'admit';
  }

  /**
   * While a backlog stands, the edge wait past which a request is refused:
   * ADMISSION_MAX_EDGE_WAIT_MS, or more while the sidecar answers quickly,
   * as long as the edge wait plus the recent time in the sidecar fit in
   * MAX_QUEUE_WAIT_MS. A request that can still be answered within the queue
   * budget is served, not refused.
   */
  get oldestAdmittedMs(): number {
    return Math.max(this.maxEdgeWaitMs, this.queueBudgetMs - this.servedMs);
  }

  /** An answer after `ms` in the sidecar (from its arrival to its answer): the recent time in the sidecar moves towards it. */
  served(ms: number): void {
    this.servedMs += (ms - this.servedMs) * SERVED_WEIGHT;
  }

  /** `served` for the answer path; none while stamps are ignored (nothing is judged, so nothing per answer). */
  get servedListener(): ((ms: number) => void) | undefined {
    return this.header === null ? undefined : (ms) => this.served(ms);
  }

  /**
   * Old requests are refused now (sidecar_admission_overloaded): a backlog
   * stood in the last interval, and stamped requests still arrive (with none
   * for an interval, the next arrival starts afresh).
   */
  get overloaded(): boolean {
    return this.standing && this.now() < this.intervalEnd + INTERVAL_MS;
  }

  /** Seconds a refused caller should wait: how long this overload has lasted, 1..60. */
  retryAfter(now: number): string {
    return retryAfterValue((now - this.overloadedSince) / 1000);
  }

  /**
   * Wraps the HTTP server's request listener (Fastify's `serverFactory`): a
   * stamped POST /process that is expired or refused is answered here, before
   * Fastify sees it. `onAnswered` counts it ('timeout' or 'overloaded').
   */
  guard(
    handler: (request: IncomingMessage, response: ServerResponse) => void,
    path: string,
    accepting: () => boolean,
    onAnswered: (outcome: 'timeout' | 'overloaded') => void,
  ): (request: IncomingMessage, response: ServerResponse) => void {
    const header = this.header;
    if (header === null) return handler;
    return (request, response) => {
      const stamp = request.headers[header];
      // Cheapest test first: most requests either carry no stamp or are admitted.
      if (stamp !== undefined && request.method === 'POST' && isPath(request.url, path) && accepting()) {
        const now = this.now();
        const edgeMs = edgeWaitMs(stamp, now);
        if (edgeMs === edgeMs) {
          const timeoutMs = requestTimeoutMs(request.headers['x-timeout-ms'], this.requestTimeoutMs);
          const judgement = this.judge(edgeMs, timeoutMs, now);
          if (judgement !== 'admit') {
            onAnswered(judgement === 'expired' ? 'timeout' : 'overloaded');
            const answer = judgement === 'expired' ? EXPIRED : OVERLOADED;
            const headers = ['content-type', 'application/json; charset=utf-8', 'content-length', answer.length];
            if (judgement === 'expired') response.writeHead(504, headers);
            else response.writeHead(503, [...headers, 'retry-after', this.retryAfter(now)]);
            response.end(answer.body);
            return;
          }
        }
      }
      handler(request, response);
    };
  }
}

/**
 * A request's deadline in ms after its stamp: x-timeout-ms when it is a
 * positive integer below `defaultMs`, else `defaultMs`. An x-timeout-ms that
 * does not parse counts as absent here; the route answers it 400.
 */
export function requestTimeoutMs(header: string | string[] | undefined, defaultMs: number): number {
  if (typeof header !== 'string') return defaultMs;
  const ms = header.trim() === '' ? Number.NaN : Number(header);
  return Number.isSafeInteger(ms) && ms > 0 && ms < defaultMs ? ms : defaultMs;
}

/** `/process` or `/process?...` (the route Fastify would match). */
function isPath(url: string | undefined, path: string): boolean {
  if (url === undefined || !url.startsWith(path)) return false;
  return url.length === path.length || url.charCodeAt(path.length) === 0x3f; // '?'
}
