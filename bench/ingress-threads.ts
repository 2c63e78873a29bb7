/**
 * Ingress threads (INGRESS_THREADS, ADR 0017): the sidecar with its HTTP
 * ingress on the main thread (INGRESS_THREADS=1) against two ingress threads
 * sharing the port (INGRESS_THREADS=2, the main thread only batching), side by
 * side in one run, with the method and the runs of bench/hot-path.ts: each run
 * a fresh process under `node --trace-gc` and the event-loop probe, variants
 * alternated round by round, the load generator (bench/generator.ts) in its
 * own process with its own CPU reported, the simulated downstream at 50 ms,
 * no jitter, in a third.
 *
 *   closed  autocannon, 4,000 connections (hot-path's closed loop): 2xx answers
 *           per second, 2 threads / 1 thread (target ≥ 1.25× on this 2-core
 *           machine, the generator sharing the cores); non-2xx by status
 *           (admission control's 503s), server CPU per 2xx, CPU by thread,
 *           generator CPU, peak RSS.
 *   open    open loop at 5,000 req/s, 2,000 connections (hot-path's latency
 *           run), the bare route as a third variant: mean batch size from
 *           /metrics (sidecar_batch_size _sum / _count over the window),
 *           2 threads / 1 thread within 0.9–1.1 (batching stays global); added
 *           p99 = sidecar client p99 − downstream p99 (its GET /stats) − bare
 *           p99, ≤ 15 ms in both modes; p50/p99/p99.9, GC pauses (main
 *           isolate and ingress isolates apart), event-loop delay of the main
 *           thread and of each ingress thread, CPU by thread.
 *
 * Run alone: `node bench/ingress-threads.ts [closed|open ...]` (about 3
 * minutes), results in bench/results/ingress-threads.json and .md, printed;
 * `npm run bench` runs it last (BENCH_SKIP_INGRESS_THREADS=1 leaves it out).
 * BENCH_QUICK=1: a few seconds a run, one round (smoke test, not a measurement).
 * INGRESS_THREADS_ROUNDS (default 2), INGRESS_THREADS_RATE (default 5000),
 * SIDECAR_ENV (extra sidecar variables for both modes, as in hot-path).
 * The verdicts and the summary: bench/ingress-threads-report.ts.
 */
import { cpus, loadavg } from 'node:os';
import { runStandalone } from './standalone.ts';
import {
  CLOSED_CONNECTIONS,
  closedRun,
  DOWNSTREAM_HOLD_MS,
  latencyRun,
  OPEN_CONNECTIONS,
  sidecarEnv,
  TIME,
  type ClosedRunFigures,
  type HotPathContext,
  type OpenRunFigures,
  withOwnDownstream,
} from './hot-path.ts';
import { renderIngressThreads } from './ingress-threads-report.ts';
import { sleep } from './stats.ts';

export type IngressPhase = 'closed' | 'open';
export const INGRESS_PHASES: readonly IngressPhase[] = ['closed', 'open'];

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = Math.max(1, Number(process.env.INGRESS_THREADS_ROUNDS ?? (QUICK ? 1 : 2)));
const RATE = Math.max(1, Number(process.env.INGRESS_THREADS_RATE ?? 5000));
/** The two modes compared: the ratio is the second's figure over the first's. */
export const THREAD_COUNTS = [1, 2] as const;

/** A run of the sidecar at INGRESS_THREADS=`threads`, or of the bare route (threads null). */
export type OpenThreadsRun = OpenRunFigures & { readonly threads: number | null; readonly loadAverage: number };
export type ClosedThreadsRun = ClosedRunFigures & { readonly threads: number; readonly loadAverage: number };

export interface IngressThreadsResults {
  readonly date: string;
  /** 1-minute load average when the phase started and when it ended (the other work on the machine skews everything). */
  readonly loadAverageAtStart: number;
  readonly loadAverageAtEnd: number;
  readonly cpus: number;
  readonly quick: boolean;
  readonly rounds: number;
  readonly rate: number;
  readonly threadCounts: readonly number[];
  readonly downstreamHoldMs: number;
  readonly sidecarEnv: Record<string, string>;
  readonly connections: { readonly open: number; readonly closed: number };
  readonly durationsSeconds: typeof TIME;
  readonly wallSeconds: number;
  readonly open: OpenThreadsRun[];
  readonly closed: ClosedThreadsRun[];
  readonly problems: string[];
}

/** The sidecar under test at INGRESS_THREADS=`threads`: hot-path's environment (SIDECAR_ENV included), the thread count last. */
export function threadsEnv(downstreamUrl: string, threads: number): Record<string, string> {
  return { ...sidecarEnv(downstreamUrl), INGRESS_THREADS: String(threads) };
}

const name = (threads: number | null): string => (threads === null ? 'bare' : `${threads} thread${threads === 1 ? '' : 's'}`);

/** 1, 2 in odd rounds; 2, 1 in even ones (A B B A ...), so drift in the machine's load hits both. */
export function closedOrder(round: number): number[] {
  return round % 2 === 0 ? [...THREAD_COUNTS] : [...THREAD_COUNTS].reverse();
}

/** bare, 1, 2 in odd rounds; 2, 1, bare in even ones. */
export function openOrder(round: number): (number | null)[] {
  const order: (number | null)[] = [null, ...THREAD_COUNTS];
  return round % 2 === 0 ? order : order.reverse();
}

const fmt = (n: number | null | undefined, d = 1): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));

function percentOfCore(seconds: number | undefined, window: number): string {
  return seconds === undefined || window <= 0 ? 'n/a' : `${fmt((100 * seconds) / window, 0)}%`;
}

export async function runIngressThreads(ctx: HotPathContext, phases: readonly IngressPhase[]): Promise<IngressThreadsResults> {
  const started = performance.now();
  // The simulated downstream must outlive every run: once it is gone, the sidecar answers 502 and the figures are void.
  let downstreamExit: string | null = null;
  void ctx.downstream.exited.then((exit) => (downstreamExit = JSON.stringify(exit)));
  const checkDownstream = (before: string): void => {
    if (downstreamExit === null || ctx.problems.some((p) => p.startsWith('the simulated downstream'))) return;
    ctx.problems.push(`the simulated downstream exited ${downstreamExit} before ${before}: that run and every later one are void`);
  };
  const loadAverageAtStart = loadavg()[0]!;
  const closed: ClosedThreadsRun[] = [];
  const open: OpenThreadsRun[] = [];
  if (phases.includes('closed')) {
    ctx.log(`  ingress threads, closed loop: autocannon, ${CLOSED_CONNECTIONS} connections, ${TIME.closed} s each, ${ROUNDS} round(s), INGRESS_THREADS ${THREAD_COUNTS.join(' and ')} alternated`);
    for (let round = 0; round < ROUNDS; round++) {
      for (const threads of closedOrder(round)) {
        checkDownstream(`closed ${name(threads)} round ${round + 1}`);
        const loadAverage = loadavg()[0]!;
        const run = await closedRun(ctx, 'sidecar', round, { env: threadsEnv(ctx.downstream.url, threads), label: name(threads) });
        closed.push({ ...run, threads, loadAverage });
        const t = run.server.threadCpu;
        const w = run.generator.windowSeconds;
        ctx.log(
          `    ${name(threads).padEnd(9)} ${fmt(run.okPerSecond, 0)} 2xx/s, ${run.non2xx} non-2xx, ${run.errors} errors, ` +
            `server ${fmt(run.cpuUsPerRequest, 0)} µs/2xx (main ${percentOfCore(t?.main, w)}, ingress ${t === null || t.workers.length === 0 ? '—' : t.workers.map((s) => percentOfCore(s, w)).join(' + ')}), ` +
            `peak RSS ${fmt((run.server.peakRssBytes ?? Number.NaN) / 2 ** 20, 0)} MiB, generator ${fmt(run.generator.percent, 0)}% CPU, load ${fmt(loadAverage, 2)}`,
        );
        await sleep(300);
      }
    }
  }
  if (phases.includes('open')) {
    ctx.log(`  ingress threads, open loop at ${RATE} req/s: ${OPEN_CONNECTIONS} connections, ${TIME.latency} s each, ${ROUNDS} round(s), bare and INGRESS_THREADS ${THREAD_COUNTS.join(' and ')} alternated`);
    for (let round = 0; round < ROUNDS; round++) {
      for (const threads of openOrder(round)) {
        checkDownstream(`open ${name(threads)} round ${round + 1}`);
        const loadAverage = loadavg()[0]!;
        const options = threads === null ? { label: 'bare' } : { env: threadsEnv(ctx.downstream.url, threads), label: name(threads) };
        const run = await latencyRun(ctx, threads === null ? 'bare' : 'sidecar', RATE, round, options);
        open.push({ ...run, threads, loadAverage });
        const l = run.measured.latencyMs;
        ctx.log(
          `    ${name(threads).padEnd(9)} p50/p99/p99.9 ${fmt(l?.p50)}/${fmt(l?.p99)}/${fmt(l?.p999)} ms, ` +
            `${run.downstreamP99Ms === null ? '' : `downstream p99 ${fmt(run.downstreamP99Ms)} ms, `}` +
            `${threads === null ? '' : `mean batch ${fmt(run.server.meanBatchSize, 2)}, `}server ${fmt(run.cpuUsPerRequest, 0)} µs/req, ` +
            `GC max ${fmt(run.server.gc.all?.maxMs, 2)} ms, generator ${fmt(run.generator.percent, 0)}% CPU, load ${fmt(loadAverage, 2)}`,
        );
        await sleep(300);
      }
    }
  }
  checkDownstream('the end of the phase');
  return {
    date: new Date().toISOString(),
    loadAverageAtStart,
    loadAverageAtEnd: loadavg()[0]!,
    cpus: cpus().length,
    quick: QUICK,
    rounds: ROUNDS,
    rate: RATE,
    threadCounts: THREAD_COUNTS,
    downstreamHoldMs: DOWNSTREAM_HOLD_MS,
    sidecarEnv: sidecarEnv('<downstream>'),
    connections: { open: OPEN_CONNECTIONS, closed: CLOSED_CONNECTIONS },
    durationsSeconds: TIME,
    wallSeconds: (performance.now() - started) / 1000,
    open,
    closed,
    problems: ctx.problems,
  };
}

/** For bench/run.ts: both phases with a downstream of their own. */
export function ingressThreadsPhase(log: (line: string) => void, phases: readonly IngressPhase[] = INGRESS_PHASES): Promise<IngressThreadsResults> {
  return withOwnDownstream(log, (ctx) => runIngressThreads(ctx, phases));
}

if (import.meta.main) {
  await runStandalone({
    name: 'ingress-threads',
    title: 'ingress threads',
    phases: INGRESS_PHASES,
    quick: QUICK,
    run: ingressThreadsPhase,
    render: renderIngressThreads,
    footer: (results: IngressThreadsResults) => `(${results.wallSeconds.toFixed(0)} s, load average at the end ${results.loadAverageAtEnd.toFixed(2)})`,
  });
}
