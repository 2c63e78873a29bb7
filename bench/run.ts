/**
 * `npm run bench`: the sidecar's performance figures (SPEC §10), side by side
 * in one run on this machine, as ratios where a ratio is the point.
 *
 *   1. Throughput: sidecar (downstream at 50 ms) vs a bare Fastify route, closed loop (autocannon).
 *   2. Added latency: open loop at 80% of the sidecar's maximum, sidecar vs bare (noise floor),
 *      plus the sidecar's own `sidecar_overhead_seconds`.
 *   3. Batching efficiency: batch size and downstream calls per 1,000 requests at ~1k..20k req/s.
 *   4. Memory: RSS with 10,000 requests waiting on a slow downstream.
 *   5. Shards: SHARD_COUNT 1, 4, 16 at one rate.
 *   6. Batch window: BATCH_WINDOW_MODE fixed vs adaptive side by side at 1k, 5k, 10k req/s on a
 *      downstream with room, and at a rate where a slow downstream's slots fill (ADR 0016).
 *      BENCH_PHASE=window runs this phase alone (about 4 minutes) and writes bench/results/window.json.
 *   7. Ingress threads (bench/ingress-threads.ts): INGRESS_THREADS=1 against 2, alternated: closed-loop
 *      2xx/s at 4,000 connections, mean batch size and added p99 at 5,000 req/s (about 3 minutes;
 *      BENCH_SKIP_INGRESS_THREADS=1 leaves it out, `node bench/ingress-threads.ts` runs it alone).
 *   8. A downstream with a limit (bench/limited-downstream.ts): the sidecar untuned and hand-tuned in front of
 *      a downstream with a pool of workers, at and over its capacity, through a capacity drop, two sidecars
 *      sharing it (about 5 minutes; BENCH_SKIP_LIMITED=1 leaves it out, BENCH_PHASE=limited or
 *      `node bench/limited-downstream.ts` runs it alone, LIMITED_SHAPES / LIMITED_VARIANTS select runs).
 *
 * Results: bench/results/latest.json, summary.md (also printed), chart.svg.
 * BENCH_QUICK=1 shortens every phase to about 2 s (smoke test).
 * BENCH_CONNECTIONS overrides the closed-loop connection count (default 2000).
 * Every process it starts listens on 127.0.0.1 and is stopped before it exits.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { shardForKey } from '../src/actors/routing.ts';
import { renderChart } from './chart.ts';
import { killAll, startBare, startDownstream, startSidecarChild, type Child, type Sidecar } from './children.ts';
import { closedLoop, type ClosedLoopResult } from './closed-loop.ts';
import * as metrics from './metrics.ts';
import { startOtlpSink } from './otlp-sink.ts';
import { OpenLoop, type OpenLoopResult } from './open-loop.ts';
import { cpuBetween, sampleProcess, type ProcSample } from './proc.ts';
import { renderSummary, renderWindow } from './report.ts';
import { hotPathPhase, type HotPathResults } from './hot-path.ts';
import { hotPathVerdicts, renderHotPath } from './hot-path-report.ts';
import { ingressThreadsPhase, type IngressThreadsResults } from './ingress-threads.ts';
import { ingressThreadsVerdicts, renderIngressThreads } from './ingress-threads-report.ts';
import { runLimited } from './limited-downstream.ts';
import { limitedVerdicts, renderLimited } from './limited-downstream-report.ts';
import type { LimitedResults } from './limited-downstream-types.ts';
import { sleep } from './stats.ts';
import type {
  BatchFigures,
  BenchResults,
  EfficiencyStep,
  LatencyFigures,
  MemoryFigures,
  OverheadFigures,
  ProcFigures,
  ShardFigures,
  ThroughputSide,
  TracingRound,
  WindowFigures,
  WindowSide,
  WindowStep,
} from './types.ts';

const QUICK = process.env.BENCH_QUICK === '1';
/** `window`: only phase 6 (fixed vs adaptive batch window); `limited`: only phase 8 (a downstream with a limit). */
const ONLY = process.env.BENCH_PHASE ?? '';
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 2000);
const OPEN_LOOP_CONNECTIONS = 4000;
const DOWNSTREAM_LATENCY_MS = 50;
const WAITING_REQUESTS = 10_000;
const EFFICIENCY_RATES = [1000, 5000, 10_000, 20_000];
const SHARD_COUNTS = [1, 4, 16];

/** Seconds. Full: about 4 minutes in all; quick: about 2 s a phase. */
const TIME = QUICK
  ? { prewarm: 0.3, throughputWarmup: 0.5, throughput: 2, latencyWarmup: 0.3, latency: 1.7, efficiencyWarmup: 0.2, efficiency: 0.4, shardWarmup: 0.2, shard: 0.5, windowWarmup: 0.3, window: 0.7, drain: 3 }
  : { prewarm: 1, throughputWarmup: 3, throughput: 10, latencyWarmup: 2, latency: 20, efficiencyWarmup: 1, efficiency: 6, shardWarmup: 1, shard: 6, windowWarmup: 1.5, window: 5, drain: 8 };

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

/** The sidecar under test: defaults of SPEC §6 apart from the downstream, BATCH_MAX_WAIT_MS stated explicitly. */
function sidecarEnv(downstreamUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { DOWNSTREAM_URL: downstreamUrl, BATCH_MAX_WAIT_MS: '10', SHARD_COUNT: '4', ...extra };
}

/**
 * Small JSON items with distinct shard keys, chosen so that body i lands on
 * shard i mod 16 when SHARD_COUNT is 16 (and so on every shard evenly for 1, 2,
 * 4, 8 or 16 shards): any n consecutive bodies, n a multiple of 16 (or of the
 * shard count), spread the load evenly, as many independent keys would.
 */
function makeBodies(n: number): Buffer[] {
  const bodies: Buffer[] = [];
  let k = 0;
  for (let i = 0; i < n; i++) {
    let key = `user-${k++}`;
    while (shardForKey(key, 16) !== i % 16) key = `user-${k++}`;
    bodies.push(Buffer.from(JSON.stringify({ key, op: 'lookup', payload: { id: i, note: 'benchmark item' } })));
  }
  return bodies;
}

const problems: string[] = [];
/** Things worth knowing that are not problems. */
const notes: string[] = [];

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function round(n: number, step = 100): number {
  return Math.max(step, Math.round(n / step) * step);
}

function procFigures(before: ProcSample | null, after: ProcSample | null, seconds: number): ProcFigures {
  const cpu = cpuBetween(before, after);
  return {
    cpuSeconds: cpu,
    cpuPercent: cpu === null || seconds <= 0 ? null : (100 * cpu) / seconds,
    rssBytes: after?.rssBytes ?? null,
    peakRssBytes: after?.hwmBytes ?? null,
  };
}

function benchCpu(before: NodeJS.CpuUsage, seconds: number): ProcFigures {
  const used = process.cpuUsage(before);
  const cpu = (used.user + used.system) / 1e6;
  return { cpuSeconds: cpu, cpuPercent: seconds > 0 ? (100 * cpu) / seconds : null, rssBytes: process.memoryUsage.rss(), peakRssBytes: null };
}

/** Batch figures from the sidecar's own metrics when it has them, else from the x-batch-id headers the client saw. */
function batchFigures(before: metrics.Scrape | null, after: metrics.Scrape | null, clientBatches: number, clientItems: number): BatchFigures {
  const sizes = metrics.histogramDelta(metrics.histogram(before, 'sidecar_batch_size'), metrics.histogram(after, 'sidecar_batch_size'));
  const batchesTotal = metrics.increase(before, after, 'sidecar_batches_total');
  const triggers = metrics.increaseByLabel(before, after, 'sidecar_batches_total', 'trigger');
  const outcomes = metrics.increaseByLabel(before, after, 'sidecar_requests_total', 'outcome');
  const client = {
    batches: clientBatches,
    items: clientItems,
    meanBatchSize: clientBatches > 0 ? clientItems / clientBatches : null,
    callsPer1000: clientItems > 0 ? (1000 * clientBatches) / clientItems : null,
  };
  if (sizes !== null && sizes.count > 0) {
    const batches = batchesTotal ?? sizes.count;
    return {
      source: 'metrics',
      batches,
      items: sizes.sum,
      meanBatchSize: sizes.sum / sizes.count,
      callsPer1000: sizes.sum > 0 ? (1000 * batches) / sizes.sum : null,
      triggers,
      outcomes,
      client,
    };
  }
  return {
    source: clientBatches > 0 ? 'x-batch-id' : null,
    batches: clientBatches,
    items: clientItems,
    meanBatchSize: client.meanBatchSize,
    callsPer1000: client.callsPer1000,
    triggers,
    outcomes,
    client,
  };
}

function overheadFigures(before: metrics.Scrape | null, after: metrics.Scrape | null): OverheadFigures | null {
  const h = metrics.histogramDelta(metrics.histogram(before, 'sidecar_overhead_seconds'), metrics.histogram(after, 'sidecar_overhead_seconds'));
  if (h === null || h.count <= 0) return null;
  const q = (p: number): { ms: number; overflow: boolean } | null => {
    const value = metrics.quantile(h, p);
    return value === null ? null : { ms: value.value * 1000, overflow: value.overflow };
  };
  const mean = metrics.mean(h);
  return { count: h.count, meanMs: mean === null ? null : mean * 1000, p50: q(0.5), p99: q(0.99), p999: q(0.999) };
}

function noteLoadProblems(label: string, statuses: Record<string, number>, errors: Record<string, number>, unfinished: number): void {
  const bad = Object.entries(statuses).filter(([code]) => !code.startsWith('2'));
  const parts = [
    ...bad.map(([code, n]) => `${n} × HTTP ${code}`),
    ...Object.entries(errors).map(([code, n]) => `${n} × ${code}`),
    ...(unfinished > 0 ? [`${unfinished} still unanswered ${TIME.drain} s after the last send (overload)`] : []),
  ];
  if (parts.length > 0) problems.push(`${label}: ${parts.join(', ')}`);
}

async function stopSidecar(sidecar: Sidecar, label: string, expectCode = 0, expected: RegExp | null = null): Promise<number | null> {
  const exit = await sidecar.stop(20_000);
  for (const line of dedupe(sidecar.problems())) {
    if (expected !== null && expected.test(line)) notes.push(`${label}: sidecar logged (expected): ${line}`);
    else problems.push(`${label}: sidecar logged: ${line}`);
  }
  if (exit.code !== expectCode) problems.push(`${label}: sidecar exited ${JSON.stringify(exit)} (expected code ${expectCode})`);
  return exit.code;
}

function dedupe(lines: string[]): string[] {
  const counts = new Map<string, number>();
  for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1);
  return [...counts].map(([line, n]) => (n > 1 ? `${line} (×${n})` : line));
}

interface OpenRun {
  readonly open: OpenLoopResult;
  readonly before: metrics.Scrape | null;
  readonly after: metrics.Scrape | null;
  readonly target: ProcFigures;
  readonly downstream: ProcFigures | null;
  readonly bench: ProcFigures;
  /** Scraped just after the last request was sent (only when asked: openRun's `scrapeAtLastSend`). */
  readonly atLastSend: metrics.Scrape | null;
}

/** One open-loop run against `target`, with metrics and /proc samples around the measured window. */
async function openRun(
  target: Child,
  downstream: Child | null,
  rate: number,
  warmupS: number,
  durationS: number,
  bodies: Buffer[],
  scrapeAtLastSend = false,
): Promise<OpenRun> {
  let before: Promise<metrics.Scrape | null> = Promise.resolve(null);
  let p0: ProcSample | null = null;
  let d0: ProcSample | null = null;
  let c0 = process.cpuUsage();
  let w0 = performance.now();
  const loop = new OpenLoop({
    origin: target.url,
    path: '/process',
    rate,
    warmupMs: warmupS * 1000,
    durationMs: durationS * 1000,
    bodies,
    connections: OPEN_LOOP_CONNECTIONS,
    drainTimeoutMs: TIME.drain * 1000,
    onMeasureStart: () => {
      p0 = sampleProcess(target.pid);
      d0 = downstream === null ? null : sampleProcess(downstream.pid);
      c0 = process.cpuUsage();
      w0 = performance.now();
      before = metrics.scrape(target.url);
    },
  });
  await loop.start();
  const seconds = (performance.now() - w0) / 1000;
  const p1 = sampleProcess(target.pid);
  const d1 = downstream === null ? null : sampleProcess(downstream.pid);
  const bench = benchCpu(c0, seconds);
  const atLastSend = scrapeAtLastSend ? await metrics.scrape(target.url) : null;
  const open = await loop.finish();
  const after = await metrics.scrape(target.url);
  return {
    open,
    before: await before,
    after,
    target: procFigures(p0, p1, seconds),
    downstream: downstream === null ? null : procFigures(d0, d1, seconds),
    bench,
    atLastSend,
  };
}

/**
 * A freshly started process runs cold (no JIT yet) for its first thousands of
 * requests; at a fixed rate near capacity it would start the measured window
 * behind a backlog. A short closed-loop run with few connections warms it first.
 */
async function prewarm(target: Child): Promise<void> {
  await closedLoop({ url: `${target.url}/process`, connections: 200, durationSeconds: TIME.prewarm, bodies: makeBodies(16) });
  await sleep(200);
}

// ---------------------------------------------------------------- phase 1

/**
 * Tracing off and on are measured in alternating rounds, and compared by their
 * medians: identical runs here differ by more than the 10 % being judged.
 */
const TRACING_ROUNDS = QUICK ? 1 : 3;

/** The run with the median throughput (the lower middle one of an even count). */
function medianRun(runs: ThroughputSide[]): ThroughputSide {
  const sorted = [...runs].sort((a, b) => a.closed.okPerSecond - b.closed.okPerSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** Tracing as an operator would run it: every batch span, 1% of request spans, OTLP over HTTP. */
function tracingEnv(otlpUrl: string): Record<string, string> {
  return {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.01',
  };
}

async function throughputSide(kind: ThroughputSide['kind'], downstream: Child, bodies: Buffer[], otlpUrl = ''): Promise<ThroughputSide> {
  const target: Child | Sidecar =
    kind === 'bare' ? await startBare() : await startSidecarChild(sidecarEnv(downstream.url, kind === 'traced' ? tracingEnv(otlpUrl) : {}));
  const isSidecar = kind !== 'bare';
  try {
    const url = `${target.url}/process`;
    await closedLoop({ url, connections: CONNECTIONS, durationSeconds: TIME.throughputWarmup, bodies });
    const before = isSidecar ? await metrics.scrape(target.url) : null;
    let p0: ProcSample | null = null;
    let d0: ProcSample | null = null;
    let c0 = process.cpuUsage();
    const onStart = (): void => {
      p0 = sampleProcess(target.pid);
      d0 = isSidecar ? sampleProcess(downstream.pid) : null;
      c0 = process.cpuUsage();
    };
    const closed: ClosedLoopResult = await closedLoop({ url, connections: CONNECTIONS, durationSeconds: TIME.throughput, bodies, onStart });
    const seconds = closed.durationSeconds;
    const p1 = sampleProcess(target.pid);
    const d1 = isSidecar ? sampleProcess(downstream.pid) : null;
    const bench = benchCpu(c0, seconds);
    const after = isSidecar ? await metrics.scrape(target.url) : null;
    const label = `throughput (${kind})`;
    if (closed.errors + closed.non2xx > 0) {
      const codes = Object.entries(closed.statusCodes).filter(([code]) => !code.startsWith('2')).map(([code, n]) => `${n} × HTTP ${code}`);
      problems.push(`${label}: ${closed.errors} connection errors (${closed.timeouts} timeouts), ${closed.non2xx} non-2xx ${codes.join(', ')}`.trim());
    }
    return {
      kind,
      closed,
      batching: isSidecar ? batchFigures(before, after, closed.batches, closed.batchedItems) : null,
      processes: {
        [isSidecar ? 'sidecar' : 'bare']: procFigures(p0, p1, seconds),
        ...(isSidecar ? { downstream: procFigures(d0, d1, seconds) } : {}),
        bench,
      },
    };
  } finally {
    if (isSidecar) await stopSidecar(target as Sidecar, `throughput (${kind})`);
    else await target.stop();
  }
}

// ---------------------------------------------------------------- phase 2

async function latencyPhase(rate: number, downstream: Child, bodies: Buffer[]): Promise<LatencyFigures> {
  const sidecar = await startSidecarChild(sidecarEnv(downstream.url));
  let run: OpenRun;
  try {
    await prewarm(sidecar);
    run = await openRun(sidecar, downstream, rate, TIME.latencyWarmup, TIME.latency, bodies);
  } finally {
    await stopSidecar(sidecar, 'latency (sidecar)');
  }
  noteLoadProblems('latency (sidecar)', run.open.statuses, run.open.errors, run.open.unfinished);
  const bare = await startBare();
  let bareRun: OpenRun;
  try {
    await prewarm(bare);
    bareRun = await openRun(bare, null, rate, TIME.latencyWarmup, TIME.latency, bodies);
  } finally {
    await bare.stop();
  }
  noteLoadProblems('latency (bare)', bareRun.open.statuses, bareRun.open.errors, bareRun.open.unfinished);
  const overhead = overheadFigures(run.before, run.after);
  return {
    rate,
    batchMaxWaitMs: 10,
    targetMs: 15,
    sidecar: {
      open: run.open,
      overhead,
      batching: batchFigures(run.before, run.after, run.open.batches, run.open.batchedItems),
      processes: { sidecar: run.target, downstream: run.downstream, bench: run.bench },
    },
    bare: { open: bareRun.open, processes: { bare: bareRun.target, bench: bareRun.bench } },
    pass: overhead?.p99 == null ? null : !overhead.p99.overflow && overhead.p99.ms <= 15,
  };
}

// ---------------------------------------------------------------- phase 3

function efficiencyRates(max: number): { rate: number; requested: number }[] {
  // Offered rates above what the sidecar sustained closed-loop are capped at 90% of that.
  const ceiling = round(0.9 * max);
  const out: { rate: number; requested: number }[] = [];
  for (const requested of EFFICIENCY_RATES) {
    const rate = Math.min(requested, ceiling);
    if (!out.some((o) => o.rate === rate)) out.push({ rate, requested });
  }
  return out.sort((a, b) => a.rate - b.rate);
}

async function efficiencyPhase(max: number, downstream: Child, bodies: Buffer[]): Promise<EfficiencyStep[]> {
  const steps: EfficiencyStep[] = [];
  const sidecar = await startSidecarChild(sidecarEnv(downstream.url));
  try {
    await prewarm(sidecar);
    for (const { rate, requested } of efficiencyRates(max)) {
      const run = await openRun(sidecar, downstream, rate, TIME.efficiencyWarmup, TIME.efficiency, bodies);
      noteLoadProblems(`efficiency @${rate}/s`, run.open.statuses, run.open.errors, run.open.unfinished);
      const step: EfficiencyStep = {
        offeredRate: rate,
        requestedRate: requested,
        open: run.open,
        batching: batchFigures(run.before, run.after, run.open.batches, run.open.batchedItems),
        overhead: overheadFigures(run.before, run.after),
        processes: { sidecar: run.target, downstream: run.downstream, bench: run.bench },
      };
      steps.push(step);
      log(
        `  ${rate} req/s offered: ${step.open.achievedRate.toFixed(0)} ok/s, mean batch ${fmt(step.batching.meanBatchSize, 1)}, ` +
          `${fmt(step.batching.callsPer1000, 1)} calls/1000, e2e p99 ${fmt(step.open.latencyMs?.p99 ?? null, 1)} ms`,
      );
      await sleep(200);
    }
  } finally {
    await stopSidecar(sidecar, 'efficiency');
  }
  return steps;
}

// ---------------------------------------------------------------- phase 4

async function memoryPhase(bodies: Buffer[]): Promise<MemoryFigures> {
  const latencyMs = 5000;
  const env = {
    SHARD_COUNT: '4',
    BATCH_MAX_SIZE: '100',
    MAX_QUEUE_PER_SHARD: '10000',
    MAX_INFLIGHT_BATCHES: '1',
    REQUEST_TIMEOUT_MS: '120000',
    DOWNSTREAM_TIMEOUT_MS: '60000',
    SHUTDOWN_TIMEOUT_MS: '2000',
  };
  const slow = await startDownstream(latencyMs);
  let sidecar: Sidecar | null = null;
  try {
    sidecar = await startSidecarChild(sidecarEnv(slow.url, env));
    await sleep(300);
    const idle = sampleProcess(sidecar.pid);
    const loop = new OpenLoop({
      origin: sidecar.url,
      path: '/process',
      rate: 10_000,
      warmupMs: 0,
      durationMs: 0,
      count: WAITING_REQUESTS,
      bodies,
      connections: WAITING_REQUESTS + 16,
      drainTimeoutMs: 15_000,
    });
    const t0 = performance.now();
    await loop.start();
    // Settled: every request written, and the sidecar idle (it has taken them all in).
    let last = sampleProcess(sidecar.pid);
    // Bounded by how fast 10,000 connections open on this machine (seconds when it is busy).
    const deadline = performance.now() + 15_000;
    while (performance.now() < deadline) {
      await sleep(250);
      const now = sampleProcess(sidecar.pid);
      const busy = cpuBetween(last, now) ?? 0;
      last = now;
      if (loop.written >= WAITING_REQUESTS && busy < 0.02) break;
    }
    const settleMs = performance.now() - t0;
    const waiting = sampleProcess(sidecar.pid);
    const downstreamSample = sampleProcess(slow.pid);
    const scrape = await metrics.scrape(sidecar.url);
    const answeredBeforeStop = loop.settled;
    const written = loop.written;
    const stopStart = performance.now();
    const code = await stopSidecar(sidecar, 'memory (10k waiting, stopped with SIGTERM)', 1, /shutdown.*timeout/i);
    const stopMs = performance.now() - stopStart;
    sidecar = null;
    const result = await loop.finish();
    noteMemoryOutcome(result);
    return {
      requests: WAITING_REQUESTS,
      downstreamLatencyMs: latencyMs,
      sidecarEnv: env,
      written,
      answeredBeforeStop,
      settleMs,
      idleRssBytes: idle?.rssBytes ?? null,
      waitingRssBytes: waiting?.rssBytes ?? null,
      peakRssBytes: waiting?.hwmBytes ?? null,
      perRequestBytes:
        idle !== null && waiting !== null ? (waiting.rssBytes - idle.rssBytes) / WAITING_REQUESTS : null,
      downstreamRssBytes: downstreamSample?.rssBytes ?? null,
      queueDepth: metrics.sum(scrape, 'sidecar_queue_depth'),
      inflightBatches: metrics.sum(scrape, 'sidecar_inflight_batches'),
      stop: { exitCode: code, ms: stopMs, statuses: result.statuses, errors: result.errors, unfinished: result.unfinished },
    };
  } finally {
    if (sidecar !== null) await sidecar.stop(5000);
    await slow.stop();
  }
}

function noteMemoryOutcome(result: OpenLoopResult): void {
  // After SIGTERM with SHUTDOWN_TIMEOUT_MS=2000 every waiting item should get 503 (SPEC §5.5); anything else is news.
  const other = Object.entries(result.statuses).filter(([code]) => code !== '503' && code !== '200');
  const errors = Object.entries(result.errors);
  if (other.length > 0 || errors.length > 0 || result.unfinished > 0) {
    problems.push(
      `memory (after SIGTERM): ${[...other.map(([c, n]) => `${n} × HTTP ${c}`), ...errors.map(([c, n]) => `${n} × ${c}`), `${result.unfinished} unanswered`].join(', ')}`,
    );
  }
}

// ---------------------------------------------------------------- phase 5

async function shardPhase(rate: number, downstream: Child, bodies: Buffer[]): Promise<ShardFigures[]> {
  const out: ShardFigures[] = [];
  for (const shards of SHARD_COUNTS) {
    const sidecar = await startSidecarChild(sidecarEnv(downstream.url, { SHARD_COUNT: String(shards) }));
    let run: OpenRun;
    try {
      await prewarm(sidecar);
      run = await openRun(sidecar, downstream, rate, TIME.shardWarmup, TIME.shard, bodies);
    } finally {
      await stopSidecar(sidecar, `shards=${shards}`);
    }
    noteLoadProblems(`shards=${shards}`, run.open.statuses, run.open.errors, run.open.unfinished);
    const figures: ShardFigures = {
      shardCount: shards,
      rate,
      open: run.open,
      batching: batchFigures(run.before, run.after, run.open.batches, run.open.batchedItems),
      overhead: overheadFigures(run.before, run.after),
      processes: { sidecar: run.target, downstream: run.downstream, bench: run.bench },
    };
    out.push(figures);
    log(
      `  SHARD_COUNT=${shards}: ${figures.open.achievedRate.toFixed(0)} ok/s, mean batch ${fmt(figures.batching.meanBatchSize, 1)}, ` +
        `e2e p99 ${fmt(figures.open.latencyMs?.p99 ?? null, 1)} ms, sidecar CPU ${fmt(figures.processes.sidecar?.cpuPercent, 0)}%`,
    );
  }
  return out;
}

// ---------------------------------------------------------------- phase 6

const WINDOW_RATES = [1000, 5000, 10_000];
/**
 * A downstream with room: 4 shards × 32 calls in flight at 50 ms allow 2,560
 * calls a second, more than any rate here needs even with 1 ms windows, so the
 * adaptive window may shrink. (With the default 8, fixed mode already keeps
 * about half the slots busy at 1,000 req/s, and the law holds the window near
 * 8 ms there: see ADR 0016.)
 */
const WINDOW_ROOM_INFLIGHT = 32;
/**
 * The bottleneck: a 200 ms downstream with 18 slots per shard at 1,000 req/s.
 * Fixed mode sends 3 items a call (one every 4 ms in a 10 ms window), about 83
 * calls a second per shard, i.e. 16.7 of its 18 slots: at their peaks they
 * fill (bench/micro/window-sim.ts: peak in flight 18; with 16 it overloads).
 */
const WINDOW_BOTTLENECK = { latencyMs: 200, maxInflight: 18, rate: 1000 } as const;

function windowEnv(downstreamUrl: string, mode: 'fixed' | 'adaptive', maxInflight: number): Record<string, string> {
  return sidecarEnv(downstreamUrl, { BATCH_WINDOW_MODE: mode, BATCH_MIN_WAIT_MS: '1', MAX_INFLIGHT_BATCHES: String(maxInflight) });
}

async function windowSide(mode: WindowSide['mode'], sidecar: Child, downstream: Child, rate: number, bodies: Buffer[], label: string): Promise<WindowSide> {
  const run = await openRun(sidecar, downstream, rate, TIME.windowWarmup, TIME.window, bodies, true);
  noteLoadProblems(`${label} (${mode})`, run.open.statuses, run.open.errors, run.open.unfinished);
  // Read at the last send: once the load stops, idle periods shrink the adaptive window.
  const windows = metrics.byLabel(run.atLastSend, 'sidecar_batch_window_seconds', 'shard');
  const values = windows === null ? [] : Object.values(windows);
  return {
    mode,
    open: run.open,
    overhead: overheadFigures(run.before, run.after),
    batching: batchFigures(run.before, run.after, run.open.batches, run.open.batchedItems),
    windowMs: values.length === 0 ? null : (1000 * values.reduce((a, b) => a + b, 0)) / values.length,
    addedP99Ms: null,
    p99RoundsMs: [],
    callsPer1000Rounds: [],
    pooledCallsPer1000: run.open.batchedItems > 0 ? (1000 * run.open.batches) / run.open.batchedItems : null,
    processes: { sidecar: run.target, downstream: run.downstream, bench: run.bench },
  };
}

/** Rounds of each mode per rate; the side with the median e2e p99 is reported, with every round's p99. */
const WINDOW_ROUNDS = QUICK ? 1 : 3;

/** The run with the median client p99 (the lower middle one of an even count). */
function medianSide(sides: WindowSide[]): WindowSide {
  const p99 = (side: WindowSide) => side.open.latencyMs?.p99 ?? Infinity;
  const sorted = [...sides].sort((a, b) => p99(a) - p99(b));
  const batches = sides.reduce((sum, side) => sum + side.batching.batches, 0);
  const items = sides.reduce((sum, side) => sum + side.batching.items, 0);
  return {
    ...sorted[Math.floor((sorted.length - 1) / 2)]!,
    p99RoundsMs: sides.map((side) => side.open.latencyMs?.p99 ?? null),
    callsPer1000Rounds: sides.map((side) => side.batching.callsPer1000),
    pooledCallsPer1000: items > 0 ? (1000 * batches) / items : null,
  };
}

/**
 * Both modes at each rate in alternating rounds (which goes first alternates),
 * each mode its own sidecar started once: drift in the machine's load hits both.
 */
async function windowPairs(
  scenario: WindowStep['scenario'],
  downstream: Child,
  latencyMs: number,
  maxInflight: number,
  rates: readonly number[],
  bodies: Buffer[],
): Promise<WindowStep[]> {
  const fixed = await startSidecarChild(windowEnv(downstream.url, 'fixed', maxInflight));
  const adaptive = await startSidecarChild(windowEnv(downstream.url, 'adaptive', maxInflight));
  const steps: WindowStep[] = [];
  try {
    await prewarm(fixed);
    await prewarm(adaptive);
    for (const rate of rates) {
      const label = `window ${scenario} @${rate}/s`;
      const runs: Record<WindowSide['mode'], WindowSide[]> = { fixed: [], adaptive: [] };
      for (let round = 0; round < WINDOW_ROUNDS; round++) {
        const order = round % 2 === 0 ? (['fixed', 'adaptive'] as const) : (['adaptive', 'fixed'] as const);
        for (const mode of order) {
          runs[mode].push(await windowSide(mode, mode === 'fixed' ? fixed : adaptive, downstream, rate, bodies, label));
          await sleep(200);
        }
      }
      const f = medianSide(runs.fixed);
      const a = medianSide(runs.adaptive);
      steps.push({ scenario, rate, downstreamLatencyMs: latencyMs, maxInflightBatches: maxInflight, bareP99Ms: null, fixed: f, adaptive: a });
      log(
        `  ${scenario} ${rate} req/s: e2e p99 fixed ${fmt(f.open.latencyMs?.p99, 1)} / adaptive ${fmt(a.open.latencyMs?.p99, 1)} ms, ` +
          `calls/1000 (all rounds) ${fmt(f.pooledCallsPer1000, 1)} / ${fmt(a.pooledCallsPer1000, 1)}, window ${fmt(f.windowMs, 1)} / ${fmt(a.windowMs, 1)} ms`,
      );
    }
  } finally {
    await stopSidecar(fixed, `window ${scenario} (fixed)`);
    await stopSidecar(adaptive, `window ${scenario} (adaptive)`);
  }
  return steps;
}

function withAdded(side: WindowSide, latencyMs: number, bareP99: number | null): WindowSide {
  const p99 = side.open.latencyMs?.p99;
  return { ...side, addedP99Ms: p99 === undefined || bareP99 === null ? null : p99 - latencyMs - bareP99 };
}

async function windowPhase(downstream: Child, bodies: Buffer[]): Promise<WindowFigures> {
  const room = await windowPairs('room', downstream, DOWNSTREAM_LATENCY_MS, WINDOW_ROOM_INFLIGHT, WINDOW_RATES, bodies);
  const slow = await startDownstream(WINDOW_BOTTLENECK.latencyMs);
  let bottleneck: WindowStep[];
  try {
    bottleneck = await windowPairs('bottleneck', slow, WINDOW_BOTTLENECK.latencyMs, WINDOW_BOTTLENECK.maxInflight, [WINDOW_BOTTLENECK.rate], bodies);
  } finally {
    await slow.stop();
  }
  // The bare route at each rate: the noise floor subtracted from both modes.
  const bareP99 = new Map<number, number | null>();
  const bare = await startBare();
  try {
    await prewarm(bare);
    for (const rate of new Set([...WINDOW_RATES, WINDOW_BOTTLENECK.rate])) {
      const run = await openRun(bare, null, rate, TIME.windowWarmup, TIME.window, bodies);
      noteLoadProblems(`window bare @${rate}/s`, run.open.statuses, run.open.errors, run.open.unfinished);
      bareP99.set(rate, run.open.latencyMs?.p99 ?? null);
      await sleep(200);
    }
  } finally {
    await bare.stop();
  }
  const steps = [...room, ...bottleneck].map((step) => {
    const floor = bareP99.get(step.rate) ?? null;
    return {
      ...step,
      bareP99Ms: floor,
      fixed: withAdded(step.fixed, step.downstreamLatencyMs, floor),
      adaptive: withAdded(step.adaptive, step.downstreamLatencyMs, floor),
    };
  });
  const at1000 = steps.find((step) => step.scenario === 'room' && step.rate === 1000);
  const slowStep = steps.find((step) => step.scenario === 'bottleneck');
  const gain = at1000?.fixed.addedP99Ms != null && at1000.adaptive.addedP99Ms != null ? at1000.fixed.addedP99Ms - at1000.adaptive.addedP99Ms : null;
  const extra =
    slowStep?.fixed.pooledCallsPer1000 != null && slowStep.adaptive.pooledCallsPer1000 != null
      ? slowStep.adaptive.pooledCallsPer1000 - slowStep.fixed.pooledCallsPer1000
      : null;
  return {
    sidecarEnv: sidecarEnv('(downstream)', { BATCH_MIN_WAIT_MS: '1' }),
    steps,
    latencyGainAt1000Ms: gain,
    bottleneckExtraCallsPer1000: extra,
  };
}

/** BENCH_PHASE=window: phase 6 alone, written to bench/results/window.json and printed. */
async function windowOnly(): Promise<void> {
  const started = performance.now();
  const load = loadavg();
  log(`batching-sidecar bench, phase 6 only (BENCH_PHASE=window): ${cpus().length} CPUs, load average ${load[0]!.toFixed(2)}`);
  const downstream = await startDownstream(DOWNSTREAM_LATENCY_MS);
  let window: WindowFigures;
  try {
    window = await windowPhase(downstream, makeBodies(64));
  } finally {
    await downstream.stop();
  }
  const meta = { date: new Date().toISOString(), commit: commit(), node: process.version, cpus: cpus().length, loadAverageAtStart: load, loadAverageAtEnd: loadavg(), wallSeconds: (performance.now() - started) / 1000, quick: QUICK, durationsSeconds: { warmup: TIME.windowWarmup, window: TIME.window } };
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(`${RESULTS_DIR}window.json`, `${JSON.stringify({ meta, window, problems, notes }, null, 2)}\n`);
  log('');
  log(renderWindow(window));
  if (problems.length > 0) log(`Problems seen:\n${problems.map((p) => `- ${p}`).join('\n')}`);
  log(`written: bench/results/window.json (${meta.wallSeconds.toFixed(0)} s; load average at the end ${meta.loadAverageAtEnd[0]!.toFixed(2)})`);
}

/** bench/results/limited-downstream.json and .md, as `node bench/limited-downstream.ts` writes them. */
function writeLimited(limited: LimitedResults): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(`${RESULTS_DIR}limited-downstream.json`, `${JSON.stringify(limited, null, 2)}\n`);
  writeFileSync(`${RESULTS_DIR}limited-downstream.md`, renderLimited(limited));
}

/** BENCH_PHASE=limited: phase 8 alone, written to bench/results/limited-downstream.json and .md and printed. */
async function limitedOnly(): Promise<void> {
  const load = loadavg();
  log(`batching-sidecar bench, phase 8 only (BENCH_PHASE=limited): ${cpus().length} CPUs, load average ${load[0]!.toFixed(2)}${QUICK ? ' (BENCH_QUICK: smoke test only)' : ''}`);
  const limited = await runLimited(log);
  writeLimited(limited);
  log('');
  log(renderLimited(limited));
  log(`written: bench/results/limited-downstream.json, bench/results/limited-downstream.md (${limited.wallSeconds.toFixed(0)} s; load average at the end ${limited.loadAverageAtEnd.toFixed(2)})`);
}

// ---------------------------------------------------------------- main

function fmt(n: number | null | undefined, digits: number): string {
  return n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits);
}

function commit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const bodies = makeBodies(64);
  const load = loadavg();
  log(`batching-sidecar bench${QUICK ? ' (BENCH_QUICK: short phases, smoke test only)' : ''}: ${cpus().length} CPUs, load average ${load[0]!.toFixed(2)}`);
  if (load[0]! > 0.7) {
    const busy = `the machine was already busy when the bench started (load average ${load[0]!.toFixed(2)} on ${cpus().length} CPUs): figures are noisier and lower than on an idle machine`;
    log(`  note: ${busy}`);
    notes.push(busy);
  }

  // ---- issue 10, hot path (bench/hot-path.ts): the headline phase, first, with processes of its own.
  // BENCH_SKIP_HOT_PATH=1 leaves it out; `node bench/hot-path.ts [phase]` runs it alone.
  let hotPath: HotPathResults | null = null;
  if (process.env.BENCH_SKIP_HOT_PATH !== '1') {
    log('[0/5] hot path (issue 10): sidecar against the bare route, open loop at 1k/5k/10k, closed loop, 20k req/s burst');
    hotPath = await hotPathPhase(log);
  }
  // ---- end of issue 10 hot path

  const downstream = await startDownstream(DOWNSTREAM_LATENCY_MS);
  let results: BenchResults;
  try {
    log(`[1/8] throughput, closed loop, ${CONNECTIONS} connections, ${TIME.throughput} s each: tracing off and on alternating, ${TRACING_ROUNDS} rounds`);
    const sink = await startOtlpSink();
    const rounds: TracingRound[] = [];
    try {
      for (let round = 0; round < TRACING_ROUNDS; round++) {
        // Alternate which goes first, so drift in the machine's load hits both.
        const order = round % 2 === 0 ? (['sidecar', 'traced'] as const) : (['traced', 'sidecar'] as const);
        const sides: Partial<Record<'sidecar' | 'traced', ThroughputSide>> = {};
        for (const kind of order) sides[kind] = await throughputSide(kind, downstream, bodies.slice(0, 16), sink.url);
        const off = sides.sidecar!;
        const on = sides.traced!;
        rounds.push({ off, on, ratio: off.closed.okPerSecond > 0 ? on.closed.okPerSecond / off.closed.okPerSecond : null });
        log(`  round ${round + 1}: tracing off ${off.closed.okPerSecond.toFixed(0)} req/s, on ${on.closed.okPerSecond.toFixed(0)} req/s (${fmt(rounds.at(-1)!.ratio, 2)}×)`);
      }
    } finally {
      await sink.close();
    }
    const sidecarSide = medianRun(rounds.map((round) => round.off));
    const tracedSide = medianRun(rounds.map((round) => round.on));
    log(`  sidecar (median): ${sidecarSide.closed.okPerSecond.toFixed(0)} req/s, mean batch ${fmt(sidecarSide.batching?.meanBatchSize, 1)}`);
    log(`  sidecar with tracing on (median): ${tracedSide.closed.okPerSecond.toFixed(0)} req/s (${sink.exports()} OTLP exports)`);
    const tracingRatio = sidecarSide.closed.okPerSecond > 0 ? tracedSide.closed.okPerSecond / sidecarSide.closed.okPerSecond : null;
    const bareSide = await throughputSide('bare', downstream, bodies.slice(0, 16));
    log(`  bare:    ${bareSide.closed.okPerSecond.toFixed(0)} req/s`);
    const max = sidecarSide.closed.okPerSecond > 0 ? sidecarSide.closed.okPerSecond : 1000;
    const ratio = bareSide.closed.okPerSecond > 0 ? sidecarSide.closed.okPerSecond / bareSide.closed.okPerSecond : null;

    const rate = round(0.8 * max);
    log(`[2/8] added latency, open loop at ${rate} req/s (80% of ${max.toFixed(0)}), ${TIME.latency} s each`);
    const latency = await latencyPhase(rate, downstream, bodies);
    log(
      `  sidecar e2e p99 ${fmt(latency.sidecar.open.latencyMs?.p99, 1)} ms, overhead p99 ${fmt(latency.sidecar.overhead?.p99?.ms, 2)} ms; ` +
        `bare e2e p99 ${fmt(latency.bare.open.latencyMs?.p99, 1)} ms`,
    );

    log(`[3/8] batching efficiency at ${efficiencyRates(max).map((r) => r.rate).join(', ')} req/s`);
    const efficiency = await efficiencyPhase(max, downstream, bodies);

    log(`[4/8] memory with ${WAITING_REQUESTS} requests waiting on a ${5000} ms downstream`);
    const memory = await memoryPhase(bodies);
    log(`  RSS idle ${fmt((memory.idleRssBytes ?? Number.NaN) / 2 ** 20, 1)} MiB, with ${WAITING_REQUESTS} waiting ${fmt((memory.waitingRssBytes ?? Number.NaN) / 2 ** 20, 1)} MiB`);

    const shardRate = round(Math.min(0.5 * max, 10_000));
    log(`[5/8] shards ${SHARD_COUNTS.join(', ')} at ${shardRate} req/s`);
    const shards = await shardPhase(shardRate, downstream, bodies);

    log(`[6/8] batch window, fixed vs adaptive, at ${WINDOW_RATES.join(', ')} req/s and at a bottleneck`);
    const window = await windowPhase(downstream, bodies);

    const downstreamFinal = sampleProcess(downstream.pid);
    results = {
      meta: {
        date: new Date().toISOString(),
        quick: QUICK,
        commit: commit(),
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? 'unknown',
        loadAverageAtStart: load,
        loadAverageAtEnd: loadavg(),
        wallSeconds: 0,
        closedLoopConnections: CONNECTIONS,
        openLoopConnections: OPEN_LOOP_CONNECTIONS,
        downstreamLatencyMs: DOWNSTREAM_LATENCY_MS,
        durationsSeconds: TIME,
        downstreamPeakRssBytes: downstreamFinal?.hwmBytes ?? null,
      },
      throughput: {
        sidecar: sidecarSide,
        bare: bareSide,
        ratio,
        target: 0.8,
        pass: ratio === null ? null : ratio >= 0.8,
        traced: tracedSide,
        tracingRounds: rounds,
        tracingRatio,
        tracingTarget: 0.9,
        tracingPass: tracingRatio === null ? null : tracingRatio >= 0.9,
        otlpExports: sink.exports(),
      },
      latency,
      efficiency,
      memory,
      shards: { rate: shardRate, configs: shards },
      window,
      problems,
      notes,
    };
  } finally {
    await downstream.stop();
  }
  // ---- ingress threads (bench/ingress-threads.ts): INGRESS_THREADS=1 against 2, with processes of its own.
  let ingressThreads: IngressThreadsResults | null = null;
  if (process.env.BENCH_SKIP_INGRESS_THREADS !== '1') {
    log('[7/8] ingress threads: INGRESS_THREADS 1 against 2, closed loop at 4,000 connections, open loop at 5,000 req/s with the bare route');
    ingressThreads = await ingressThreadsPhase(log);
  }
  // ---- a downstream with a limit (bench/limited-downstream.ts), with processes of its own.
  let limited: LimitedResults | null = null;
  if (process.env.BENCH_SKIP_LIMITED !== '1') {
    log('[8/8] a downstream with a limit: the sidecar untuned and hand-tuned, at and over capacity, a capacity drop, two sidecars');
    limited = await runLimited(log);
    writeLimited(limited);
  }
  results.meta.wallSeconds = (performance.now() - started) / 1000;
  let summary = renderSummary(results);
  // ---- issue 10, hot path: its section goes before the older phases, its figures into latest.json.
  if (hotPath !== null) {
    const at = summary.indexOf('\n## 1. ');
    const section = renderHotPath(hotPath);
    summary = at < 0 ? `${summary}\n${section}` : `${summary.slice(0, at + 1)}${section}\n${summary.slice(at + 1)}`;
  }
  const withHotPath = hotPath === null ? results : { ...results, hotPath, hotPathVerdicts: hotPathVerdicts(hotPath) };
  // ---- end of issue 10 hot path
  // ---- ingress threads: its section last, its figures into latest.json.
  if (ingressThreads !== null) summary = `${summary}\n${renderIngressThreads(ingressThreads)}`;
  const withIngress = ingressThreads === null ? withHotPath : { ...withHotPath, ingressThreads, ingressThreadsVerdicts: ingressThreadsVerdicts(ingressThreads) };
  // ---- a downstream with a limit: its section last, its figures into latest.json (and limited-downstream.json).
  if (limited !== null) summary = `${summary}\n${renderLimited(limited)}`;
  const json = limited === null ? withIngress : { ...withIngress, limitedDownstream: limited, limitedDownstreamVerdicts: limitedVerdicts(limited) };
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(`${RESULTS_DIR}latest.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${RESULTS_DIR}summary.md`, summary);
  writeFileSync(`${RESULTS_DIR}chart.svg`, renderChart(results));
  log('');
  log(summary);
  log(`written: bench/results/latest.json, bench/results/summary.md, bench/results/chart.svg (${results.meta.wallSeconds.toFixed(0)} s)`);
}

process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

try {
  if (ONLY === 'window') await windowOnly();
  else if (ONLY === 'limited') await limitedOnly();
  else if (ONLY !== '') throw new Error(`BENCH_PHASE=${ONLY}: the phases that run alone are "window" and "limited"`);
  else await main();
  process.exit(0);
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  killAll();
  process.exit(1);
}
