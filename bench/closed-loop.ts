/**
 * Closed-loop throughput with autocannon's programmatic API: every connection
 * sends its next request as soon as the previous one is answered, so with
 * enough connections the server is CPU-bound and the answer rate is its
 * maximum on this machine.
 */
import type { IncomingHttpHeaders } from 'node:http';
import autocannon from 'autocannon';

export interface ClosedLoopOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly bodies: readonly Buffer[];
  /** Called (synchronously) when every connection is set up and the load begins. */
  readonly onStart?: () => void;
}

export interface ClosedLoopResult {
  /** From autocannon's 'start' event (all clients set up) to the end of the run. */
  readonly durationSeconds: number;
  readonly requests: number;
  readonly ok: number;
  /** 2xx answers per second. */
  readonly okPerSecond: number;
  readonly non2xx: number;
  /** Connection errors and timeouts (autocannon's `errors` counts both). */
  readonly errors: number;
  readonly timeouts: number;
  readonly statusCodes: Record<string, number>;
  /** Closed-loop latency, ms (coordinated omission applies: informational only). */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly mean: number; readonly max: number };
  /** Distinct x-batch-id values seen, and the answers that carried one. */
  readonly batches: number;
  readonly batchedItems: number;
}

export async function closedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const batchIds = new Set<string>();
  let batchedItems = 0;
  // The same hook runs for both targets, so both pay the same client-side cost.
  const onResponse = (_status: number, _body: string, _context: object, headers: IncomingHttpHeaders | undefined): void => {
    const id = headers?.['x-batch-id'];
    if (typeof id === 'string') {
      batchIds.add(id);
      batchedItems++;
    }
  };
  const requests: autocannon.Request[] = options.bodies.map((body) => ({
    method: 'POST',
    path: '/process',
    headers: { 'content-type': 'application/json' },
    body,
    onResponse,
  }));
  let startedAt = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        duration: options.durationSeconds,
        timeout: 30,
        // Stop within 100 ms of `duration` (autocannon only checks at each sample tick, 1 s by default).
        sampleInt: 100,
        requests,
      },
      (error: unknown, done: autocannon.Result) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(done)),
    );
    // autocannon's own `duration` also counts the time spent creating the clients
    // (seconds, with thousands of connections); the rate is counted from 'start'.
    instance.on('start', () => {
      startedAt = performance.now();
      options.onStart?.();
    });
  });
  const seconds = (performance.now() - startedAt) / 1000;
  const statusCodes: Record<string, number> = {};
  const stats = (result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {};
  for (const [code, entry] of Object.entries(stats)) statusCodes[code] = entry.count;
  const ok = result['2xx'];
  return {
    durationSeconds: seconds,
    requests: result.requests.total,
    ok,
    okPerSecond: seconds > 0 ? ok / seconds : 0,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, mean: result.latency.mean, max: result.latency.max },
    batches: batchIds.size,
    batchedItems,
  };
}
