/**
 * What do ingress threads buy? (ADR 0017: INGRESS_THREADS=2 against 1 on this
 * 2-core machine, the generator sharing the cores: closed-loop 2xx/s at 4,000
 * connections ≥ 1.25×; the mean batch size at 5,000 req/s within 0.9–1.1×,
 * batching staying global; added p99 at 5,000 req/s ≤ 15 ms in both modes,
 * the bare route run beside them each round.) The runs of the added-latency
 * and cost phases, the two modes alternated; CPU by thread, GC by isolate and
 * each thread's event-loop delay beside them, and the load average at each
 * run's start, so that a round squeezed by other work shows as such.
 *
 * INGRESS_THREADS_RATE (default 5000), BENCH_ROUNDS, SIDECAR_ENV.
 */
import { generatorCaveat, judge, listSection, num, table, verdictTable, type Phase, type Results, type Verdict } from '../kit/report.ts';
import { alternate, closedRun, openRun, steady, withDownstream, type ClosedRun, type Context, type OpenRun } from '../kit/runs.ts';
import { median, ratio, sleep } from '../kit/stats.ts';
import { DOWNSTREAM_HOLD_MS, QUICK, ROUNDS, sidecarEnv } from '../kit/workload.ts';

export const TARGETS = { throughputRatio: 1.25, batchSizeRatio: { min: 0.9, max: 1.1 }, addedP99Ms: 15 } as const;
const RATE = Number(process.env.INGRESS_THREADS_RATE ?? 5000);

/** A run of the sidecar at INGRESS_THREADS=`threads`, or of the bare route (threads null). */
export type OpenThreadsRun = OpenRun & { readonly threads: number | null };
export type ClosedThreadsRun = ClosedRun & { readonly threads: number };

export type IngressThreadsResults = Results<{ rate: number; downstreamHoldMs: number; closed: ClosedThreadsRun[]; open: OpenThreadsRun[] }>;

const label = (threads: number | null): string => (threads === null ? 'bare' : `${threads} thread${threads === 1 ? '' : 's'}`);
const p99 = (run: OpenThreadsRun | undefined): number | null => run?.segments[0]!.latencyMs?.p99 ?? null;
const added = (run: OpenThreadsRun | undefined, bare: number | null, hold: number): number | null => {
  const p = p99(run);
  return p === null || bare === null ? null : p - (run!.downstreamP99Ms ?? hold) - bare;
};

/** 1, 2 in even rounds, 2, 1 in odd ones; the open loop adds the bare route: bare, 1, 2, then 2, 1, bare. */
export const closedOrder = (round: number): number[] => alternate([1, 2], round);
export const openOrder = (round: number): (number | null)[] => alternate([null, 1, 2], round);

/** Medians by mode, and the ratios of 2 threads to 1. */
export function summarise(r: IngressThreadsResults) {
  const closedOf = (t: number): ClosedThreadsRun[] => r.closed.filter((run) => run.threads === t);
  const openOf = (t: number | null): OpenThreadsRun[] => r.open.filter((run) => run.threads === t);
  const ok = (t: number): number | null => median(closedOf(t).map((run) => run.closed.okPerSecond));
  const batch = (t: number): number | null => median(openOf(t).map((run) => run.server.meanBatchSize));
  const bareP99 = median(openOf(null).map(p99));
  const sides = [1, 2].map((threads) => {
    const runs = openOf(threads);
    const measured = median(runs.map((run) => run.downstreamP99Ms));
    const p = median(runs.map(p99));
    const downstream = measured ?? r.downstreamHoldMs;
    return { threads, p99: p, downstream, measured: measured !== null, added: p === null || bareP99 === null ? null : p - downstream - bareP99, non2xx: closedOf(threads).reduce((n, run) => n + run.closed.non2xx, 0) };
  });
  return { ok: [ok(1), ok(2)], throughputRatio: ratio(ok(2), ok(1)), batch: [batch(1), batch(2)], batchSizeRatio: ratio(batch(2), batch(1)), bareP99, sides };
}

/** The same figures round by round, each mode against the other's run and the bare run of the same round. */
export function byRound(r: IngressThreadsResults) {
  const rounds = [...new Set([...r.closed, ...r.open].map((run) => run.round))].sort((a, b) => a - b);
  return rounds.map((round) => {
    const closedOf = (t: number): ClosedThreadsRun | undefined => r.closed.find((run) => run.round === round && run.threads === t);
    const openOf = (t: number | null): OpenThreadsRun | undefined => r.open.find((run) => run.round === round && run.threads === t);
    const bareP99 = p99(openOf(null));
    return {
      round,
      throughputRatio: ratio(closedOf(2)?.closed.okPerSecond, closedOf(1)?.closed.okPerSecond),
      batchSizeRatio: ratio(openOf(2)?.server.meanBatchSize, openOf(1)?.server.meanBatchSize),
      bareP99,
      addedP99: [1, 2].map((threads) => ({ threads, ms: added(openOf(threads), bareP99, r.downstreamHoldMs) })),
    };
  });
}

export function ingressThreadsVerdicts(r: IngressThreadsResults): Verdict[] {
  const s = summarise(r);
  const out: Verdict[] = [];
  if (r.closed.length > 0) out.push({ name: 'closed-loop 2xx/s (4,000 connections), 2 threads / 1', result: `${num(s.ok[1], 0)} / ${num(s.ok[0], 0)} = ${num(s.throughputRatio, 2)}×`, target: `≥ ${TARGETS.throughputRatio}×`, pass: judge(s.throughputRatio, (v) => v >= TARGETS.throughputRatio) });
  if (r.open.length === 0) return out;
  const { min, max } = TARGETS.batchSizeRatio;
  out.push({ name: `mean batch size at ${num(r.rate, 0)} req/s (sidecar_batch_size over the window), 2 threads / 1`, result: `${num(s.batch[1], 2)} / ${num(s.batch[0], 2)} = ${num(s.batchSizeRatio, 3)}×`, target: `${min}–${max}×`, pass: judge(s.batchSizeRatio, (v) => v >= min && v <= max) });
  for (const side of s.sides) {
    const what = side.measured ? 'downstream p99 (measured)' : `downstream hold (nominal ${r.downstreamHoldMs} ms)`;
    out.push({ name: `added p99 at ${num(r.rate, 0)} req/s, ${label(side.threads)} (client p99 − ${what} − bare p99)`, result: `${num(side.p99)} − ${num(side.downstream)} − ${num(s.bareP99)} = ${num(side.added)} ms`, target: `≤ ${TARGETS.addedP99Ms} ms`, pass: judge(side.added, (v) => v <= TARGETS.addedP99Ms) });
  }
  return out;
}

function cells(run: OpenThreadsRun | ClosedThreadsRun): string[] {
  const w = run.generator.windowSeconds;
  const t = run.server.threadCpu;
  const pct = (s: number): string => num((100 * s) / w, 0);
  const g = run.server.gcByIsolate;
  const loops = [run.server.eventLoop, ...run.server.workerEventLoops].map((e) => (e === null ? 'n/a' : `${num(e.p99Ms)} / ${num(e.maxMs)}`)).join('; ');
  return [
    t === null || w <= 0 ? 'n/a' : `${pct(t.main)} / ${t.workers.map(pct).join(' + ') || '—'} / ${pct(t.other)}`, `${num(g.main.all?.maxMs)} / ${num(g.workers.all?.maxMs)}`, loops,
    `${num(run.generator.percent, 0)}%`, num(run.loadAverage, 2),
  ];
}

export function renderIngressThreads(r: IngressThreadsResults): string {
  const common = ['CPU % of a core: main / ingress / other', 'GC max ms: main / ingress', 'event-loop p99 / max ms: main; ingress', 'generator CPU', 'load average at its start'];
  const caveats = [
    ...r.closed.map((run) => generatorCaveat(`closed ${label(run.threads)} round ${run.round + 1}`, null, run.generator.percent)),
    ...r.open.map((run) => generatorCaveat(`open ${label(run.threads)} round ${run.round + 1}`, run.segments[0]!.sendLagMs?.p99, run.generator.percent)),
  ].filter((c): c is string => c !== null);
  return [
    `## Ingress threads: INGRESS_THREADS=2 against 1${r.quick ? ' (BENCH_QUICK: a smoke run, not a measurement)' : ` (${r.date})`}`,
    '',
    ...verdictTable(ingressThreadsVerdicts(r)),
    '',
    ...byRound(r).map((x) => `- round ${x.round + 1}: closed-loop 2xx/s ratio ${num(x.throughputRatio, 2)}×, mean batch size ratio ${num(x.batchSizeRatio, 3)}×, bare p99 ${num(x.bareP99)} ms, added p99 ${x.addedP99.map((a) => `${num(a.ms)} ms (${label(a.threads)})`).join(', ')}`),
    '',
    ...table(['mode', 'round', '2xx/s', 'non-2xx', 'p99 ms', 'server CPU µs/2xx', ...common], r.closed.map((run) => [label(run.threads), String(run.round + 1), num(run.closed.okPerSecond, 0), num(run.closed.non2xx, 0), num(run.closed.latencyMs.p99, 0), num(run.cpuUsPerRequest, 0), ...cells(run)])),
    '',
    ...table(['mode', 'round', 'p50 / p99 / p99.9 ms', 'downstream p99 ms', 'mean batch', ...common], r.open.map((run) => {
      const l = run.segments[0]!.latencyMs;
      return [label(run.threads), String(run.round + 1), `${num(l?.p50)} / ${num(l?.p99)} / ${num(l?.p999)}`, num(run.downstreamP99Ms), num(run.server.meanBatchSize, 2), ...cells(run)];
    })),
    ...listSection('Problems and caveats', [...caveats, ...r.problems]),
    '',
  ].join('\n');
}

async function run(ctx: Context): Promise<IngressThreadsResults> {
  const env = (threads: number): Record<string, string> => ({ ...sidecarEnv(ctx.downstream.url), INGRESS_THREADS: String(threads) });
  const closed: ClosedThreadsRun[] = [];
  const open: OpenThreadsRun[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const threads of closedOrder(round)) {
      closed.push({ ...(await closedRun(ctx, { variant: 'sidecar', env: env(threads), label: label(threads), round })), threads });
      await sleep(300);
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const threads of openOrder(round)) {
      const spec = threads === null ? { variant: 'bare' as const, round } : { variant: 'sidecar' as const, env: env(threads), label: label(threads), round };
      open.push({ ...(await openRun(ctx, spec, steady(RATE))), threads });
      await sleep(300);
    }
  }
  return { date: new Date().toISOString(), quick: QUICK, rate: RATE, downstreamHoldMs: DOWNSTREAM_HOLD_MS, closed, open, problems: ctx.problems };
}

export const ingressThreads: Phase<IngressThreadsResults> = {
  name: 'ingress-threads',
  question: 'Do two ingress threads serve more than one, with batching still global and no added latency?',
  run: (log) => withDownstream(log, run),
  verdicts: ingressThreadsVerdicts,
  render: renderIngressThreads,
};
