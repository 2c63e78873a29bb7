/**
 * The edge stamp: when the load balancer in front received the request, as it
 * says in `x-request-start` (the header named by REQUEST_START_HEADER). nginx
 * writes `t=<seconds.millis>` (`proxy_set_header X-Request-Start "t=${msec}"`),
 * HAProxy and others epoch milliseconds or microseconds, with or without the
 * `t=` prefix. The three are told apart by magnitude: today's epoch is about
 * 1.8e9 s, 1.8e12 ms and 1.8e15 µs.
 *
 * The edge wait (receipt − stamp) is the time a request spent before the
 * sidecar could read it: in the balancer's queue, in the kernel's socket
 * buffer, behind other requests on a busy loop. Nothing inside the process can
 * see that wait (ADR 0012); the stamp shows it. A request's deadline counts
 * from the stamp (SPEC §2), and admission control acts on the edge waits
 * (admission.ts, ADR 0021).
 *
 * A stamp that does not parse, or lies more than 1 s in the future (a clock
 * that is off, a forged header), is ignored: the request is treated as if it
 * carried none. One that lies less than 1 s ahead reads as no wait.
 */

/** A stamp further ahead of this process's clock than this is ignored. */
export const MAX_FUTURE_MS = 1_000;

/** Epoch values below these are seconds, then milliseconds; above, microseconds. */
const SECONDS_BELOW = 1e11;
const MILLISECONDS_BELOW = 1e14;

/**
 * The stamp as epoch milliseconds, or NaN when the header is absent or does
 * not parse. Accepts `t=1733412345.123`, `1733412345.123`, `1733412345123`,
 * `1733412345123456` and the same with `t=`.
 */
export function parseStamp(header: string | string[] | undefined): number {
  if (typeof header !== 'string') return Number.NaN;
  const text = header.charCodeAt(0) === 0x74 && header.charCodeAt(1) === 0x3d ? header.slice(2) : header; // "t="
  // Number() takes hex, exponents, Infinity and surrounding spaces: allow digits and one dot only.
  if (!/^\d{1,17}(\.\d{1,9})?$/.test(text)) return Number.NaN;
  const value = Number(text);
  if (value < SECONDS_BELOW) return value * 1000;
  if (value < MILLISECONDS_BELOW) return value;
  return value / 1000;
}

/**
 * The edge wait in ms of a request received at `nowEpochMs` (Date.now()), at
 * least 0; NaN when it carries no usable stamp (none, unparsable, or more than
 * MAX_FUTURE_MS ahead).
 */
export function edgeWaitMs(header: string | string[] | undefined, nowEpochMs: number): number {
  const stamp = parseStamp(header);
  if (!(stamp <= nowEpochMs + MAX_FUTURE_MS)) return Number.NaN; // NaN fails the test too
  return stamp < nowEpochMs ? nowEpochMs - stamp : 0;
}
