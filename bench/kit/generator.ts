/**
 * The bench's one load generator, always in its own process (issue 10: its
 * CPU is its own and reported). The parent calls runGenerator(config); this
 * file, spawned with the same Node binary, runs either
 *
 *   open    bench/kit/open-loop.ts: a schedule of segments at fixed rates,
 *           latency from each request's intended send time, optionally
 *           stamped `x-request-start` at that time;
 *   closed  autocannon: every connection sends its next request when the
 *           previous one is answered (the server's maximum on this machine),
 *           after an optional warm-up run with fewer connections.
 *
 * It prints one JSON line per event, so the parent can sample the server at
 * the right moments: {"event":"segment","index":i} (segment i's first request
 * is due), "warm" (closed: the warm-up is over), "start" (closed: every
 * connection is up), "sent" (the last request is out), then "result" with the
 * figures and its own CPU over the window (from the first segment not labelled
 * "warmup", or from "start", to "sent").
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { OpenLoop, type OpenLoopResult, type Segment } from './open-loop.ts';

export interface GeneratorConfig {
  readonly mode: 'open' | 'closed';
  readonly origin: string;
  readonly path?: string;
  readonly connections: number;
  readonly bodies: readonly string[];
  /** Open: the schedule, the drain after the last send, x-request-start stamps. */
  readonly segments?: readonly Segment[];
  readonly drainS?: number;
  readonly stamp?: boolean;
  /** Closed: the measured run, and a warm-up run before it (left out of the figures). */
  readonly seconds?: number;
  readonly warmupSeconds?: number;
  readonly warmupConnections?: number;
}

/** CPU seconds of the generator over the window, as % of one core, the window's length, and over its whole life. */
export type GeneratorCpu = { readonly [K in 'seconds' | 'percent' | 'windowSeconds' | 'totalSeconds']: number };

/** autocannon's figures; `errors` counts connection errors and timeouts; the latency (ms) is closed loop, coordinated omission and all: informational. */
export type ClosedLoopResult = { readonly [K in 'durationSeconds' | 'requests' | 'ok' | 'okPerSecond' | 'non2xx' | 'errors' | 'timeouts']: number } & {
  readonly statusCodes: Record<string, number>;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly mean: number; readonly max: number };
};

export type GeneratorEvent = { readonly event: 'segment' | 'warm' | 'start' | 'sent'; readonly index?: number };

/** Open mode: requests due over the whole schedule, handed to the pool, and written to a socket. */
export type OpenResult = OpenLoopResult & { readonly mode: 'open'; readonly cpu: GeneratorCpu; readonly requests: { total: number; sent: number; written: number } };
export type ClosedResult = { readonly mode: 'closed'; readonly closed: ClosedLoopResult; readonly cpu: GeneratorCpu };

const SELF = fileURLToPath(import.meta.url);

export function runGenerator(config: GeneratorConfig & { mode: 'open' }, onEvent?: (e: GeneratorEvent) => void, signal?: AbortSignal): Promise<OpenResult>;
export function runGenerator(config: GeneratorConfig & { mode: 'closed' }, onEvent?: (e: GeneratorEvent) => void, signal?: AbortSignal): Promise<ClosedResult>;
export function runGenerator(config: GeneratorConfig, onEvent?: (e: GeneratorEvent) => void, signal?: AbortSignal): Promise<OpenResult | ClosedResult> {
  const child = spawn(process.execPath, [SELF, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => void (stderr.length < 10_000 && (stderr += chunk.toString())));
  // Never left loading the machine: killed when the parent exits, or at once when the caller aborts (the demo's Ctrl-C).
  const kill = (): void => void child.kill('SIGKILL');
  process.once('exit', kill);
  if (signal?.aborted === true) kill();
  else signal?.addEventListener('abort', kill, { once: true });
  return new Promise((resolve, reject) => {
    let result: OpenResult | ClosedResult | null = null;
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: { event?: string };
      try {
        entry = JSON.parse(line) as { event?: string };
      } catch {
        return;
      }
      if (entry.event === 'result') result = entry as unknown as OpenResult | ClosedResult;
      else onEvent?.(entry as GeneratorEvent);
    });
    child.once('exit', (code, sig) => {
      process.removeListener('exit', kill);
      if (result !== null && code === 0) resolve(result);
      else reject(new Error(`generator exited ${JSON.stringify({ code, signal: sig })} without a result: ${stderr}`));
    });
  });
}

type Merge = Record<string, unknown>;

/** Several generators' figures as one: counts added, percentiles and lags the worst of them (a bound, not a merge). */
function merge(parts: readonly unknown[]): unknown {
  const [first] = parts;
  if (typeof first === 'number') return (parts as number[]).reduce((a, b) => a + b, 0);
  if (Array.isArray(first)) return first.map((_, i) => merge(parts.map((p) => (p as unknown[])[i])));
  if (first === null || typeof first !== 'object') return first;
  const out: Merge = {};
  for (const key of new Set(parts.flatMap((p) => (p === null ? [] : Object.keys(p as Merge))))) {
    const values = parts.map((p) => (p as Merge | null)?.[key]).filter((v) => v !== undefined && v !== null);
    const worst = /^(p\d+|max|mean|percent|second|seconds|windowSeconds|durationSeconds|label|segment|mode)$/.test(key) || /latency|lag/i.test(key);
    out[key] = worst && values.every((v) => typeof v === 'number') ? Math.max(...(values as number[])) : worst && typeof values[0] !== 'object' ? values[0] : merge(values);
  }
  return out;
}

/**
 * `processes` generators at once, each with its share of the connections and
 * of every segment's rate (BENCH_GENERATORS, for a many-core machine where one
 * generator cannot keep up); the first one's events stand for all.
 */
export async function runGenerators<C extends GeneratorConfig>(processes: number, config: C, onEvent?: (e: GeneratorEvent) => void): Promise<C extends { mode: 'open' } ? OpenResult : ClosedResult> {
  const share = { ...config, connections: Math.ceil(config.connections / processes), segments: config.segments?.map((s) => ({ ...s, rate: s.rate / processes, count: s.count === undefined ? undefined : Math.ceil(s.count / processes) })) };
  const results = await Promise.all(Array.from({ length: processes }, (_, i) => runGenerator(share as GeneratorConfig & { mode: 'open' }, i === 0 ? onEvent : undefined)));
  return (processes === 1 ? results[0] : merge(results)) as C extends { mode: 'open' } ? OpenResult : ClosedResult;
}

/** Closed loop with autocannon; the rate counts from its 'start' (every connection up), not from its creating them. */
async function closedLoop(url: string, connections: number, seconds: number, bodies: readonly Buffer[], onStart?: () => void): Promise<ClosedLoopResult> {
  let startedAt = performance.now();
  const requests = bodies.map((body) => ({ method: 'POST' as const, path: new URL(url).pathname, headers: { 'content-type': 'application/json' }, body }));
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    // sampleInt 100: stop within 100 ms of `duration` (autocannon checks it at each sample tick).
    const instance = autocannon({ url, connections, pipelining: 1, duration: seconds, timeout: 30, sampleInt: 100, requests }, (error: unknown, done: autocannon.Result) =>
      error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(done),
    );
    instance.on('start', () => {
      startedAt = performance.now();
      onStart?.();
    });
  });
  const durationSeconds = (performance.now() - startedAt) / 1000;
  const stats = (result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {};
  const statusCodes = Object.fromEntries(Object.entries(stats).map(([code, entry]) => [code, entry.count]));
  const { p50, p99, mean, max } = result.latency;
  const ok = result['2xx'];
  return { durationSeconds, requests: result.requests.total, ok, okPerSecond: durationSeconds > 0 ? ok / durationSeconds : 0, non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts, statusCodes, latencyMs: { p50, p99, mean, max } };
}

const emit = (line: object): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
const cpuSeconds = (usage: NodeJS.CpuUsage): number => (usage.user + usage.system) / 1e6;

async function main(config: GeneratorConfig): Promise<void> {
  const bodies = config.bodies.map((body) => Buffer.from(body));
  const path = config.path ?? '/process';
  let [c0, w0] = [process.cpuUsage(), performance.now()];
  const markWindow = (): void => void ([c0, w0] = [process.cpuUsage(), performance.now()]);
  const cpu = (): GeneratorCpu => {
    const windowSeconds = (performance.now() - w0) / 1000;
    const seconds = cpuSeconds(process.cpuUsage(c0));
    return { seconds, percent: windowSeconds > 0 ? (100 * seconds) / windowSeconds : 0, windowSeconds, totalSeconds: cpuSeconds(process.cpuUsage()) };
  };
  if (config.mode === 'closed') {
    const url = `${config.origin}${path}`;
    if ((config.warmupSeconds ?? 0) > 0) {
      await closedLoop(url, config.warmupConnections ?? 200, config.warmupSeconds!, bodies);
      emit({ event: 'warm' });
    }
    const closed = await closedLoop(url, config.connections, config.seconds ?? 10, bodies, () => (markWindow(), emit({ event: 'start' })));
    const used = cpu();
    emit({ event: 'sent' });
    return emit({ event: 'result', mode: 'closed', closed, cpu: used });
  }
  const segments = config.segments ?? [];
  const measured = Math.max(0, segments.findIndex((segment) => segment.label !== 'warmup'));
  const onSegment = (index: number): void => {
    if (index === measured) markWindow();
    emit({ event: 'segment', index });
  };
  const loop = new OpenLoop({ origin: config.origin, path, segments, bodies, connections: config.connections, stamp: config.stamp, drainTimeoutMs: (config.drainS ?? 8) * 1000, onSegment });
  await loop.start();
  const used = cpu();
  emit({ event: 'sent' });
  const result = await loop.finish();
  emit({ event: 'result', mode: 'open', ...result, cpu: used, requests: { total: loop.total, sent: loop.sent, written: loop.written } });
}

// Run as a process by runGenerator.
if (process.argv[1] === SELF) {
  try {
    await main(JSON.parse(process.argv[2] ?? '{}') as GeneratorConfig);
    process.exit(0);
  } catch (error) {
    process.stderr.write(`generator failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  }
}
