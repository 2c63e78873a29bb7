/**
 * Issue 10, "Burst-proof hot path": the sidecar against the bare Fastify
 * route (bench/bare-server.ts), side by side in one run, with the floor
 * between them (bench/floor-server.ts: the least batching route the fixed
 * design allows, which tells the design's own cost from the sidecar's code),
 * each variant a fresh process started with `node --trace-gc`, variants
 * alternated round by round (bare, floor, sidecar in odd rounds, the reverse
 * in even ones), the load generator in its own process (bench/generator.ts)
 * with its own CPU reported, the simulated downstream at 50 ms with no jitter
 * in a third process. The verdicts are against the bare route, as the issue
 * sets them; the floor is reported beside them.
 *
 *   latency  open loop at 1k, 5k, 10k req/s, 2,000 connections: client p50/p99/p99.9
 *            from intended send time, added p99 = sidecar p99 − the downstream's
 *            own p99 over the window (its GET /stats; 50 ms if unread) − bare p99
 *            at the same rate; server CPU per request; GC
 *            pauses; event-loop delay and sidecar_overhead_seconds beside them.
 *   closed   autocannon, 4,000 connections: req/s ratio, p99 ratio (fairness),
 *            peak RSS ratio (VmHWM).
 *   burst    1k req/s for 3 s, 20k req/s for 10 s, 1k req/s for 5 s: answers
 *            (ok / 503 with retry-after / other), resets, p99 of all answers,
 *            goodput ratio, p99 of the steady rate from 2 s after the burst.
 *
 * Run alone: `node bench/hot-path.ts [latency|closed|burst ...]`, results in
 * bench/results/hot-path.json and hot-path.md; `npm run bench` runs it first.
 * BENCH_QUICK=1: a few seconds per phase, one round (smoke test, not a measurement).
 * HOT_PATH_ROUNDS (default 2), HOT_PATH_BURST_ROUNDS (default 1), HOT_PATH_RATES (e.g. "1000,5000"),
 * HOT_PATH_BURST_RATE (default 20000), HOT_PATH_BURST_STAMP=1 (the generator stamps each request
 * `x-request-start` at its intended send time, as a load balancer in front would: SPEC §2),
 * HOT_PATH_FLOOR=0 (no floor runs), SIDECAR_ENV
 * (JSON object of extra sidecar variables, e.g. '{"SHARD_COUNT":"2"}').
 * The servers under test and what is sampled from them: bench/server-under-test.ts;
 * the verdicts and the summary: bench/hot-path-report.ts.
 */
import { request } from 'undici';
import { cpus, loadavg } from 'node:os';
import { shardForKey } from '../src/actors/routing.ts';
import { startDownstream, type Child } from './children.ts';
import { runGenerator, type GeneratorEvent } from './generator-process.ts';
import type { GeneratorCpu } from './generator.ts';
import { renderHotPath } from './hot-path-report.ts';
import type { SecondResult, Segment, SegmentResult } from './segment-loop.ts';
import { startTarget, stopTarget, Window, type ServerFigures, type Variant } from './server-under-test.ts';
import { runStandalone } from './standalone.ts';
import { sleep } from './stats.ts';

export type Phase = 'latency' | 'closed' | 'burst';
export const PHASES: readonly Phase[] = ['latency', 'closed', 'burst'];
export type { Variant };

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = Math.max(1, Number(process.env.HOT_PATH_ROUNDS ?? (QUICK ? 1 : 2)));
/** The burst phase is long (18 s a variant): one round unless asked. */
const BURST_ROUNDS = Math.max(1, Number(process.env.HOT_PATH_BURST_ROUNDS ?? 1));
/** HOT_PATH_FLOOR=0 leaves the floor (bench/floor-server.ts) out: bare and sidecar only. */
const FLOOR = process.env.HOT_PATH_FLOOR !== '0';
const RATES = (process.env.HOT_PATH_RATES ?? '1000,5000,10000').split(',').map(Number).filter((n) => n > 0);
export const DOWNSTREAM_HOLD_MS = 50;
export const OPEN_CONNECTIONS = 2000;
export const CLOSED_CONNECTIONS = 4000;
const BURST_CONNECTIONS = 4000;
const BURST_RATE = Number(process.env.HOT_PATH_BURST_RATE ?? 20_000);
const BURST_STAMP = process.env.HOT_PATH_BURST_STAMP === '1';
const BURST = { preRate: 1000, preS: 3, rate: BURST_RATE, seconds: 10, recoveryRate: 1000, graceS: 2, recoveredS: 3, stamped: BURST_STAMP };
const QUICK_BURST = { preRate: 1000, preS: 1, rate: BURST_RATE, seconds: 2, recoveryRate: 1000, graceS: 2, recoveredS: 1, stamped: BURST_STAMP };

/** Seconds. */
export const TIME = QUICK
  ? { warmup: 1, latency: 2, closedWarmup: 0.5, closed: 2, drain: 5 }
  : { warmup: 3, latency: 10, closedWarmup: 2, closed: 10, drain: 10 };

/** SIDECAR_ENV: a JSON object of extra sidecar variables (knobs to try), values as strings. */
export function extraSidecarEnv(): Record<string, string> {
  const raw = process.env.SIDECAR_ENV;
  if (raw === undefined || raw === '') return {};
  const parsed = JSON.parse(raw) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
}

/** The sidecar under test: SPEC §6 defaults apart from these, plus SIDECAR_ENV. */
export function sidecarEnv(downstreamUrl: string): Record<string, string> {
  return { DOWNSTREAM_URL: downstreamUrl, BATCH_MAX_WAIT_MS: '10', SHARD_COUNT: '4', ...extraSidecarEnv() };
}

/** Small JSON items whose keys spread evenly over 1, 2, 4, 8 or 16 shards (as in bench/run.ts). */
export function makeBodies(n: number): string[] {
  const bodies: string[] = [];
  let k = 0;
  for (let i = 0; i < n; i++) {
    let key = `user-${k++}`;
    while (shardForKey(key, 16) !== i % 16) key = `user-${k++}`;
    bodies.push(JSON.stringify({ key, op: 'lookup', payload: { id: i, note: 'benchmark item' } }));
  }
  return bodies;
}


export interface OpenRunFigures {
  readonly variant: Variant;
  readonly round: number;
  readonly rate: number;
  readonly measured: SegmentResult;
  readonly server: ServerFigures;
  /** Server CPU µs per request offered in the measured window. */
  readonly cpuUsPerRequest: number | null;
  readonly generator: GeneratorCpu;
  /** The downstream's own p99 hold (ms) over the measured window, from its GET /stats; null for bare or when unread. */
  readonly downstreamP99Ms: number | null;
}

export interface ClosedRunFigures {
  readonly variant: Variant;
  readonly round: number;
  readonly okPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  /** Answers by HTTP status (autocannon's count). */
  readonly statusCodes: Record<string, number>;
  readonly errors: number;
  readonly server: ServerFigures;
  readonly cpuUsPerRequest: number | null;
  readonly generator: GeneratorCpu;
}

export interface BurstRunFigures {
  readonly variant: Variant;
  readonly round: number;
  readonly segments: SegmentResult[];
  readonly seconds: SecondResult[];
  readonly server: ServerFigures;
  readonly generator: GeneratorCpu;
}

export interface HotPathResults {
  readonly date: string;
  /** 1-minute load average when the phase started (other work on the machine skews everything). */
  readonly loadAverageAtStart: number;
  readonly cpus: number;
  readonly quick: boolean;
  readonly rounds: number;
  readonly downstreamHoldMs: number;
  readonly sidecarEnv: Record<string, string>;
  readonly connections: { readonly open: number; readonly closed: number; readonly burst: number };
  readonly burstSchedule: typeof BURST;
  readonly durationsSeconds: typeof TIME;
  readonly latency: OpenRunFigures[];
  readonly closed: ClosedRunFigures[];
  readonly burst: BurstRunFigures[];
  readonly problems: string[];
}


/** bare, floor, sidecar in odd rounds; the reverse in even ones, so drift in the machine's load hits all. */
function order(round: number): Variant[] {
  const variants: Variant[] = FLOOR ? ['bare', 'floor', 'sidecar'] : ['bare', 'sidecar'];
  return round % 2 === 0 ? variants : variants.reverse();
}

export interface HotPathContext {
  readonly downstream: Child;
  readonly bodies: string[];
  readonly problems: string[];
  readonly log: (line: string) => void;
}

function noteOutcomes(label: string, s: SegmentResult, problems: string[]): void {
  const parts: string[] = [];
  if (s.otherStatus + s.shed > 0) parts.push(Object.entries(s.statuses).filter(([c]) => !c.startsWith('2')).map(([c, n]) => `${n} × HTTP ${c}`).join(', '));
  for (const [code, n] of Object.entries(s.errors)) parts.push(`${n} × ${code}`);
  if (s.unfinished > 0) parts.push(`${s.unfinished} unanswered`);
  if (parts.length > 0) problems.push(`${label}: ${parts.join(', ')}`);
}

/** GET /stats (?reset=1) of the simulated downstream; null when it cannot be read. */
async function downstreamStats(downstream: Child, reset: boolean): Promise<{ batches: number; p99: number | null } | null> {
  try {
    const { statusCode, body } = await request(`${new URL(downstream.url).origin}/stats${reset ? '?reset=1' : ''}`);
    if (statusCode !== 200) {
      await body.dump();
      return null;
    }
    return (await body.json()) as { batches: number; p99: number | null };
  } catch {
    return null;
  }
}

/** For phases that reuse these runs with another sidecar (bench/ingress-threads.ts). */
export interface RunOptions {
  /** The sidecar's environment; default sidecarEnv(downstream). */
  readonly env?: Record<string, string>;
  /** The variant's name in problem lines; default the variant. */
  readonly label?: string;
}

export async function latencyRun(ctx: HotPathContext, variant: Variant, rate: number, round: number, options: RunOptions = {}): Promise<OpenRunFigures> {
  const target = await startTarget(variant, options.env ?? sidecarEnv(ctx.downstream.url));
  const window = new Window(target);
  const label = `latency ${rate}/s ${options.label ?? variant} round ${round + 1}`;
  try {
    // Warm the JIT at a gentle rate first, then at the rate itself, both left out.
    const segments: Segment[] = [
      { label: 'warmup', rate: Math.min(rate, 2000), seconds: TIME.warmup / 2 },
      { label: 'warmup', rate, seconds: TIME.warmup / 2 },
      { label: 'measure', rate, seconds: TIME.latency },
    ];
    let statsReset: Promise<unknown> = Promise.resolve();
    const onEvent = (e: GeneratorEvent): void => {
      // The sidecar's first /metrics under load disturbs its loop far more than
      // later ones (measured: client p99 at 5,000 req/s 105-165 ms with the
      // window's first scrape its first, 67-80 ms with one scrape in the
      // warm-up before it; ADR 0011). Prometheus scrapes all the time: the
      // window measures that steady state, not a process's first scrape.
      if (e.event === 'segment' && e.index === 1) window.warm();
      if (e.event === 'segment' && e.index === 2) {
        window.open();
        if (variant !== 'bare') statsReset = downstreamStats(ctx.downstream, true);
      } else if (e.event === 'sent') window.close();
    };
    const result = await runGenerator(
      { mode: 'open', origin: target.child.url, connections: OPEN_CONNECTIONS, segments, bodies: ctx.bodies, drainS: TIME.drain },
      onEvent,
    );
    await statsReset;
    const stats = variant !== 'bare' ? await downstreamStats(ctx.downstream, false) : null;
    const measured = result.segments[2]!;
    noteOutcomes(label, measured, ctx.problems);
    const server = await window.figures();
    const offered = rate * TIME.latency;
    return {
      variant,
      round,
      rate,
      measured,
      server,
      cpuUsPerRequest: server.cpuSeconds === null ? null : (server.cpuSeconds * 1e6) / offered,
      generator: result.cpu,
      downstreamP99Ms: stats?.p99 ?? null,
    };
  } finally {
    await stopTarget(target, label, ctx.problems);
  }
}

export async function closedRun(ctx: HotPathContext, variant: Variant, round: number, options: RunOptions = {}): Promise<ClosedRunFigures> {
  const target = await startTarget(variant, options.env ?? sidecarEnv(ctx.downstream.url));
  const window = new Window(target);
  const label = `closed ${options.label ?? variant} round ${round + 1}`;
  try {
    const onEvent = (e: GeneratorEvent): void => {
      if (e.event === 'warm') window.warm(); // as in latencyRun
      else if (e.event === 'start') window.open();
      else if (e.event === 'sent') window.close();
    };
    const result = await runGenerator(
      {
        mode: 'closed',
        origin: target.child.url,
        connections: CLOSED_CONNECTIONS,
        seconds: TIME.closed,
        warmupSeconds: TIME.closedWarmup,
        warmupConnections: 200,
        bodies: ctx.bodies.slice(0, 16),
      },
      onEvent,
    );
    const c = result.closed;
    if (c.errors + c.non2xx > 0) ctx.problems.push(`${label}: ${c.errors} connection errors (${c.timeouts} timeouts), ${c.non2xx} non-2xx`);
    const server = await window.figures();
    return {
      variant,
      round,
      okPerSecond: c.okPerSecond,
      p50Ms: c.latencyMs.p50,
      p99Ms: c.latencyMs.p99,
      non2xx: c.non2xx,
      statusCodes: c.statusCodes,
      errors: c.errors,
      server,
      cpuUsPerRequest: server.cpuSeconds === null || c.ok <= 0 ? null : (server.cpuSeconds * 1e6) / c.ok,
      generator: result.cpu,
    };
  } finally {
    await stopTarget(target, label, ctx.problems);
  }
}

export function burstSchedule(): typeof BURST {
  return QUICK ? QUICK_BURST : BURST;
}

async function burstRun(ctx: HotPathContext, variant: Variant, round: number): Promise<BurstRunFigures> {
  const target = await startTarget(variant, sidecarEnv(ctx.downstream.url));
  const window = new Window(target);
  const label = `burst ${variant} round ${round + 1}`;
  const b = burstSchedule();
  try {
    const segments: Segment[] = [
      { label: 'warmup', rate: Math.min(2000, b.preRate), seconds: TIME.warmup },
      { label: 'before', rate: b.preRate, seconds: b.preS },
      { label: 'burst', rate: b.rate, seconds: b.seconds },
      { label: 'grace', rate: b.recoveryRate, seconds: b.graceS },
      { label: 'recovered', rate: b.recoveryRate, seconds: b.recoveredS },
    ];
    const onEvent = (e: GeneratorEvent): void => {
      if (e.event === 'segment' && e.index === 1) window.warm(); // as in latencyRun
      else if (e.event === 'segment' && e.index === 2) window.open();
      else if (e.event === 'segment' && e.index === 3) window.close();
    };
    const result = await runGenerator(
      { mode: 'open', origin: target.child.url, connections: BURST_CONNECTIONS, segments, bodies: ctx.bodies, drainS: TIME.drain, stamp: b.stamped },
      onEvent,
    );
    const server = await window.figures();
    const measured = result.segments.slice(1);
    for (const s of measured) if (s.errorCount + s.unfinished + s.otherStatus > 0) noteOutcomes(`${label} (${s.label})`, s, ctx.problems);
    return { variant, round, segments: measured, seconds: result.seconds, server, generator: result.cpu };
  } finally {
    await stopTarget(target, label, ctx.problems);
  }
}

const fmt = (n: number | null | undefined, d = 1): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));

export async function runHotPath(ctx: HotPathContext, phases: readonly Phase[]): Promise<HotPathResults> {
  const loadAverageAtStart = loadavg()[0]!;
  const latency: OpenRunFigures[] = [];
  const closed: ClosedRunFigures[] = [];
  const burst: BurstRunFigures[] = [];
  if (phases.includes('latency')) {
    ctx.log(`  hot path, latency: open loop at ${RATES.join(', ')} req/s, ${OPEN_CONNECTIONS} connections, ${TIME.latency} s each, ${ROUNDS} round(s), ${order(0).join(', ')} alternated`);
    for (const rate of RATES) {
      for (let round = 0; round < ROUNDS; round++) {
        for (const variant of order(round)) {
          const run = await latencyRun(ctx, variant, rate, round);
          latency.push(run);
          const l = run.measured.latencyMs;
          ctx.log(
            `    ${rate}/s ${variant.padEnd(7)} p50/p99/p99.9 ${fmt(l?.p50)}/${fmt(l?.p99)}/${fmt(l?.p999)} ms, ` +
              `${run.downstreamP99Ms === null ? '' : `downstream p99 ${fmt(run.downstreamP99Ms)} ms, `}server ${fmt(run.cpuUsPerRequest, 0)} µs/req, GC max ${fmt(run.server.gc.all?.maxMs, 2)} ms, generator ${fmt(run.generator.percent, 0)}% CPU`,
          );
          await sleep(300);
        }
      }
    }
  }
  if (phases.includes('closed')) {
    ctx.log(`  hot path, closed loop: autocannon, ${CLOSED_CONNECTIONS} connections, ${TIME.closed} s each, ${ROUNDS} round(s)`);
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of order(round)) {
        const run = await closedRun(ctx, variant, round);
        closed.push(run);
        ctx.log(`    ${variant.padEnd(7)} ${fmt(run.okPerSecond, 0)} req/s, p99 ${fmt(run.p99Ms, 0)} ms, peak RSS ${fmt((run.server.peakRssBytes ?? Number.NaN) / 2 ** 20)} MiB`);
        await sleep(300);
      }
    }
  }
  if (phases.includes('burst')) {
    const b = burstSchedule();
    ctx.log(
      `  hot path, burst: ${b.preRate}/s for ${b.preS} s, ${b.rate}/s for ${b.seconds} s, ${b.recoveryRate}/s for ${b.graceS + b.recoveredS} s, ` +
        `${BURST_CONNECTIONS} connections${b.stamped ? ', stamped at the intended send time' : ''}`,
    );
    for (let round = 0; round < BURST_ROUNDS; round++) {
      for (const variant of order(round)) {
        const run = await burstRun(ctx, variant, round);
        burst.push(run);
        const s = run.segments.find((x) => x.label === 'burst')!;
        ctx.log(
          `    ${variant.padEnd(7)} burst: ${s.ok} ok, ${s.shed} × 503 (${s.shedWithRetryAfter} with retry-after), ${s.otherStatus} other, ` +
            `${s.errorCount} errors, ${s.unfinished} unanswered; p99 of answers ${fmt(s.latencyMs?.p99, 0)} ms; ` +
            `in time (2xx within 1 s) ${fmt(s.okInTime / s.seconds, 0)}/s`,
        );
        await sleep(300);
      }
    }
  }
  return {
    date: new Date().toISOString(),
    loadAverageAtStart,
    cpus: cpus().length,
    quick: QUICK,
    rounds: ROUNDS,
    downstreamHoldMs: DOWNSTREAM_HOLD_MS,
    sidecarEnv: sidecarEnv('<downstream>'),
    connections: { open: OPEN_CONNECTIONS, closed: CLOSED_CONNECTIONS, burst: BURST_CONNECTIONS },
    burstSchedule: burstSchedule(),
    durationsSeconds: TIME,
    latency,
    closed,
    burst,
    problems: ctx.problems,
  };
}

/** Runs `run` in a context of its own: a downstream (50 ms, no jitter) stopped at the end, 64 bodies, no problems yet. */
export async function withOwnDownstream<T>(log: (line: string) => void, run: (ctx: HotPathContext) => Promise<T>): Promise<T> {
  const downstream = await startDownstream(DOWNSTREAM_HOLD_MS);
  try {
    return await run({ downstream, bodies: makeBodies(64), problems: [], log });
  } finally {
    await downstream.stop();
  }
}

/** For bench/run.ts: the phases with a downstream of their own. */
export function hotPathPhase(log: (line: string) => void, phases: readonly Phase[] = PHASES): Promise<HotPathResults> {
  return withOwnDownstream(log, (ctx) => runHotPath(ctx, phases));
}

if (import.meta.main) {
  await runStandalone({
    name: 'hot-path',
    title: 'hot path (issue 10)',
    phases: PHASES,
    quick: QUICK,
    run: hotPathPhase,
    render: renderHotPath,
  });
}
