/**
 * What does the sidecar cost against the floor, the least batching route the
 * design allows? (SPEC §10: closed-loop 2xx/s at 4,000 connections ≥ 0.85×
 * the floor's with 503s ≤ 1 % of answers; closed-loop p99 ≤ 1.5×; peak RSS
 * ≤ 1.2×; a ready sidecar with no traffic ≤ 2 ms of CPU a second. CPU per
 * request at 5,000 req/s is judged by the added-latency phase, whose runs measure it.)
 *
 * Closed loop (autocannon in the generator process, 4,000 connections after a
 * warm-up with 200), the bare route, the floor and the sidecar alternated
 * round by round, each run a fresh traced process; peak RSS is VmHWM. Then a
 * ready sidecar, and a ready floor beside it, left idle: their CPU (all
 * threads, to the nanosecond) over IDLE_S, from IDLE_SETTLE_S after ready.
 */
import { startServer, type Variant } from '../kit/launcher.ts';
import { cpuNanoseconds } from '../kit/proc.ts';
import { generatorCaveat, judge, listSection, mib, num, threeWayTable, verdictTable, type Phase, type Results, type ThreeWay, type Verdict } from '../kit/report.ts';
import { alternate, closedRun, withDownstream, type ClosedRun } from '../kit/runs.ts';
import { median, ratio, sleep } from '../kit/stats.ts';
import { CLOSED_CONNECTIONS, QUICK, ROUNDS, sidecarEnv, VARIANTS } from '../kit/workload.ts';

export const TARGETS = { okPerSecondOfFloor: 0.85, shedShare: 0.01, p99OfFloor: 1.5, peakRssOfFloor: 1.2, idleCpuMsPerSecond: 2 } as const;
const IDLE_S = QUICK ? 1 : 10;
/** Idle is measured from this long after ready: start-up's last compilations and GCs are over. */
const IDLE_SETTLE_S = 2;

/** idleCpuMsPerSecond: a ready server with no traffic, CPU ms per second over IDLE_S (the floor's beside the sidecar's). */
export type CostResults = Results<{ connections: number; runs: ClosedRun[]; idleCpuMsPerSecond: number | null; idleFloorCpuMsPerSecond?: number | null }>;

const med = (r: CostResults, variant: Variant, pick: (run: ClosedRun) => number | null): number | null => median(r.runs.filter((run) => run.variant === variant).map(pick));
const shed = (run: ClosedRun): number => run.closed.statusCodes['503'] ?? 0;
const shedShare = (run: ClosedRun): number | null => (run.closed.requests > 0 ? shed(run) / (run.closed.ok + run.closed.non2xx) : null);

export function costRows(r: CostResults): ThreeWay[] {
  const row = (figure: string, pick: (run: ClosedRun) => number | null, digits = 0): ThreeWay => ({ figure, bare: med(r, 'bare', pick), floor: med(r, 'floor', pick), sidecar: med(r, 'sidecar', pick), digits });
  return [
    row(`closed loop 2xx/s (${r.connections} connections)`, (run) => run.closed.okPerSecond),
    row('closed loop p99 ms', (run) => run.closed.latencyMs.p99),
    row('closed loop peak RSS MiB', (run) => mib(run.server.peakRssBytes)),
    row('server CPU µs per 2xx', (run) => run.cpuUsPerRequest, 1),
  ];
}

export function verdicts(r: CostResults): Verdict[] {
  const x = (pick: (run: ClosedRun) => number | null): { s: number | null; f: number | null; x: number | null } => {
    const [s, f] = [med(r, 'sidecar', pick), med(r, 'floor', pick)];
    return { s, f, x: ratio(s, f) };
  };
  const ok = x((run) => run.closed.okPerSecond);
  const share = med(r, 'sidecar', shedShare);
  const p99 = x((run) => run.closed.latencyMs.p99);
  const rss = x((run) => run.server.peakRssBytes);
  return [
    { name: `closed-loop 2xx/s at ${r.connections} connections, sidecar / floor`, result: `${num(ok.s, 0)} / ${num(ok.f, 0)} = ${num(ok.x, 2)}×`, target: `≥ ${TARGETS.okPerSecondOfFloor}×`, pass: judge(ok.x, (v) => v >= TARGETS.okPerSecondOfFloor) },
    { name: 'closed loop: 503s of the sidecar\'s answers', result: `${num(share === null ? null : 100 * share, 2)}%`, target: `≤ ${100 * TARGETS.shedShare}%`, pass: judge(share, (v) => v <= TARGETS.shedShare) },
    { name: 'closed-loop p99, sidecar / floor', result: `${num(p99.s, 0)} / ${num(p99.f, 0)} ms = ${num(p99.x, 2)}×`, target: `≤ ${TARGETS.p99OfFloor}×`, pass: judge(p99.x, (v) => v <= TARGETS.p99OfFloor) },
    { name: 'closed-loop peak RSS, sidecar / floor', result: `${num(mib(rss.s), 0)} / ${num(mib(rss.f), 0)} MiB = ${num(rss.x, 2)}×`, target: `≤ ${TARGETS.peakRssOfFloor}×`, pass: judge(rss.x, (v) => v <= TARGETS.peakRssOfFloor) },
    { name: 'a ready sidecar with no traffic: CPU per second', result: `${num(r.idleCpuMsPerSecond, 2)} ms (floor: ${num(r.idleFloorCpuMsPerSecond ?? null, 2)})`, target: `≤ ${TARGETS.idleCpuMsPerSecond} ms`, pass: judge(r.idleCpuMsPerSecond, (v) => v <= TARGETS.idleCpuMsPerSecond) },
  ];
}

export function render(r: CostResults): string {
  const caveats = r.runs.map((run) => generatorCaveat(`${run.variant} round ${run.round + 1}`, null, run.generator.percent)).filter((c): c is string => c !== null);
  const rounds = r.runs.map((run) => `${run.variant} round ${run.round + 1}: ${num(run.closed.okPerSecond, 0)} 2xx/s, ${Object.entries(run.closed.statusCodes).map(([code, n]) => `${num(n, 0)} × ${code}`).join(', ')}, ${run.closed.errors} errors, p99 ${num(run.closed.latencyMs.p99, 0)} ms, GC max ${num(run.server.gc.all?.maxMs)} ms, generator ${num(run.generator.percent, 0)}%`);
  return [
    `## Cost against the floor (closed loop, autocannon, ${r.connections} connections${r.quick ? '; BENCH_QUICK: a smoke run, not a measurement' : `; ${r.date}`})`,
    '',
    ...verdictTable(verdicts(r)),
    '',
    ...threeWayTable(costRows(r)),
    ...listSection('Round by round', rounds),
    ...listSection('Problems and caveats', [...caveats, ...r.problems]),
    '',
  ].join('\n');
}

/** A ready `variant` with no traffic: its CPU, ms per second over IDLE_S. */
async function idleCpu(variant: Variant, downstreamUrl: string): Promise<number | null> {
  const server = await startServer(variant, sidecarEnv(downstreamUrl));
  try {
    await sleep(IDLE_SETTLE_S * 1000);
    const before = cpuNanoseconds(server.pid);
    await sleep(IDLE_S * 1000);
    const after = cpuNanoseconds(server.pid);
    return before === null || after === null ? null : (after - before) / 1e6 / IDLE_S;
  } finally {
    await server.stop();
  }
}

export const cost: Phase<CostResults> = {
  name: 'cost',
  question: 'What does the sidecar cost against the floor: closed-loop 2xx/s, 503s, p99, peak RSS, idle CPU?',
  verdicts,
  render,
  run: (log) =>
    withDownstream(log, async (ctx) => {
      const runs: ClosedRun[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        for (const variant of alternate(VARIANTS, round)) {
          runs.push(await closedRun(ctx, { variant, round }));
          await sleep(300);
        }
      }
      const idleCpuMsPerSecond = await idleCpu('sidecar', ctx.downstream.url);
      const idleFloorCpuMsPerSecond = await idleCpu('floor', ctx.downstream.url);
      log(`  idle: sidecar ${num(idleCpuMsPerSecond, 2)}, floor ${num(idleFloorCpuMsPerSecond, 2)} ms of CPU a second`);
      return { date: new Date().toISOString(), quick: QUICK, connections: CLOSED_CONNECTIONS, runs, idleCpuMsPerSecond, idleFloorCpuMsPerSecond, problems: ctx.problems };
    }),
};
