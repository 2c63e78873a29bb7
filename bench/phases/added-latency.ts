/**
 * What latency does the sidecar add, and how many downstream calls does it
 * make? (SPEC §10: added p99 ≤ 15 ms at 1,000, 5,000 and 10,000 req/s on an
 * unlimited 50 ms downstream; CPU per request at 5,000 req/s ≤ 1.2× the
 * floor's; downstream calls per 1,000 requests, fewer being the point.)
 *
 * Open loop at each rate, 2,000 connections, the bare route, the floor and
 * the sidecar alternated round by round, each run a fresh traced process.
 * Added p99 = the sidecar's client p99 − the downstream's own p99 over the
 * window (its GET /stats; the nominal 50 ms when unread) − the bare route's
 * client p99 at the same rate (ADR 0011). Beside it: GC pauses (the largest
 * scavenge at 5,000 req/s ≤ 5 ms, issue 10), event-loop delay, the sidecar's
 * own sidecar_overhead_seconds, and the generator's CPU and send lag. At
 * 5,000 req/s the contract floor too (FLOOR_CONTRACT=1, ADR 0023): what
 * SPEC's per-request work costs before any of the sidecar's own design.
 *
 * BENCH_RATES (default 1000,5000,10000), BENCH_ROUNDS (2), BENCH_FLOOR=0 (no floor), SIDECAR_ENV.
 */
import { alternate, cpuPerRequest, openRun, steady, withDownstream, type OpenRun } from '../kit/runs.ts';
import { generatorCaveat, judge, listSection, num, table, threeWayTable, verdictTable, type Phase, type Results, type ThreeWay, type Verdict } from '../kit/report.ts';
import { median, ratio, sleep } from '../kit/stats.ts';
import type { Variant } from '../kit/launcher.ts';
import { DOWNSTREAM_HOLD_MS, QUICK, ROUNDS, sidecarEnv, VARIANTS } from '../kit/workload.ts';

export const TARGETS = { addedP99Ms: 15, scavengeMaxMsAt5k: 5, cpuPerRequestOfFloor: 1.2 } as const;
const RATES = (process.env.BENCH_RATES ?? '1000,5000,10000').split(',').map(Number).filter((n) => n > 0);

export type LatencyRun = OpenRun & { readonly rate: number };

export type AddedLatencyResults = Results<{ sidecarEnv: Record<string, string>; downstreamHoldMs: number; runs: LatencyRun[] }>;

const of = (runs: readonly LatencyRun[], variant: Variant, rate: number): LatencyRun[] => runs.filter((r) => r.variant === variant && r.rate === rate);
const p99 = (run: LatencyRun): number | null => run.segments[0]!.latencyMs?.p99 ?? null;

/** The largest young-generation pause (Scavenge, Minor Mark-Sweep) of a run. */
function youngMaxMs(run: LatencyRun): number | null {
  const young = Object.entries(run.server.gc).filter(([kind]) => /^(Scavenge|Minor)/.test(kind));
  return young.length > 0 ? Math.max(...young.map(([, f]) => f.maxMs)) : Object.keys(run.server.gc).length > 0 ? 0 : null;
}

/** Added p99 at one rate: the sidecar's median p99 − the downstream's (measured median, else nominal) − the bare route's. */
export function addedP99(r: AddedLatencyResults, rate: number) {
  const sidecar = median(of(r.runs, 'sidecar', rate).map(p99));
  const bare = median(of(r.runs, 'bare', rate).map(p99));
  const measured = median(of(r.runs, 'sidecar', rate).map((run) => run.downstreamP99Ms));
  const downstream = measured ?? r.downstreamHoldMs;
  // The floor's the same way: what the fixed design adds on this machine before any of our code.
  const added = (p: number | null): number | null => (p === null || bare === null ? null : p - downstream - bare);
  return { sidecar, bare, downstream, measured: measured !== null, added: added(sidecar), floorAdded: added(median(of(r.runs, 'floor', rate).map(p99))) };
}

const rates = (r: AddedLatencyResults): number[] => [...new Set(r.runs.map((run) => run.rate))];

/** Each variant's medians at each rate: CPU per request, client p99, calls per 1,000 requests. */
export function floorRows(r: AddedLatencyResults): ThreeWay[] {
  const row = (figure: string, rate: number, pick: (run: LatencyRun) => number | null, digits = 1): ThreeWay => {
    const m = (variant: Variant): number | null => median(of(r.runs, variant, rate).map(pick));
    return { figure, bare: m('bare'), floor: m('floor'), sidecar: m('sidecar'), digits };
  };
  return rates(r).flatMap((rate) => [
    row(`server CPU µs per request at ${num(rate, 0)} req/s`, rate, cpuPerRequest),
    row(`client p99 ms at ${num(rate, 0)} req/s`, rate, p99),
    row(`downstream calls per 1,000 requests at ${num(rate, 0)} req/s`, rate, (run) => run.server.callsPer1000),
  ]);
}

export function verdicts(r: AddedLatencyResults): Verdict[] {
  const out: Verdict[] = [];
  for (const rate of rates(r)) {
    const a = addedP99(r, rate);
    const what = a.measured ? 'downstream p99 (measured)' : `downstream hold (nominal ${r.downstreamHoldMs} ms)`;
    const floor = a.floorAdded === null ? '' : ` (the floor's: ${num(a.floorAdded)} ms)`;
    out.push({ name: `added p99 at ${num(rate, 0)} req/s (sidecar p99 − ${what} − bare p99)`, result: `${num(a.sidecar)} − ${num(a.downstream)} − ${num(a.bare)} = ${num(a.added)} ms${floor}`, target: `≤ ${TARGETS.addedP99Ms} ms`, pass: judge(a.added, (v) => v <= TARGETS.addedP99Ms) });
  }
  if (r.runs.some((run) => run.rate === 5000)) {
    const young = Math.max(...of(r.runs, 'sidecar', 5000).map((run) => youngMaxMs(run) ?? Number.NaN));
    out.push({ name: 'largest scavenge of the sidecar at 5,000 req/s (--trace-gc)', result: `${num(young, 2)} ms`, target: `≤ ${TARGETS.scavengeMaxMsAt5k} ms`, pass: judge(young, (v) => v <= TARGETS.scavengeMaxMsAt5k) });
    const cpu = (variant: Variant): number | null => median(of(r.runs, variant, 5000).map(cpuPerRequest));
    const x = ratio(cpu('sidecar'), cpu('floor'));
    out.push({ name: 'server CPU per request at 5,000 req/s, sidecar / floor', result: `${num(cpu('sidecar'))} / ${num(cpu('floor'))} µs = ${num(x, 2)}×`, target: `≤ ${TARGETS.cpuPerRequestOfFloor}×`, pass: judge(x, (v) => v <= TARGETS.cpuPerRequestOfFloor) });
    if (cpu('contract') !== null) {
      const [contract, own] = [ratio(cpu('contract'), cpu('floor')), ratio(cpu('sidecar'), cpu('contract'))];
      out.push({ name: "… of which the contract's per-request work: contract floor / floor (FLOOR_CONTRACT=1)", result: `${num(cpu('contract'))} / ${num(cpu('floor'))} µs = ${num(contract, 2)}×`, target: 'what SPEC costs', pass: null, reported: true });
      out.push({ name: '… and the sidecar over the contract floor (actors, admission, call limit, drain)', result: `${num(own, 2)}×`, target: 'what our design costs', pass: null, reported: true });
    }
  }
  const calls = rates(r).map((rate) => `${num(median(of(r.runs, 'sidecar', rate).map((run) => run.server.callsPer1000)), 1)} at ${num(rate, 0)}/s`);
  out.push({ name: 'downstream calls per 1,000 requests (shielding)', result: calls.join(', '), target: 'fewer is the point', pass: null, reported: true });
  return out;
}

function runRow(run: LatencyRun): string[] {
  const s = run.segments[0]!;
  const l = s.latencyMs;
  const o = run.server.overhead;
  const e = run.server.eventLoop;
  const gc = Object.entries(run.server.gc).filter(([kind]) => kind !== 'all').map(([kind, f]) => `${kind} ${f.count}× max ${num(f.maxMs)}`).join('; ');
  return [
    num(run.rate, 0), run.variant, String(run.round + 1), `${num(l?.p50)} / ${num(l?.p99)} / ${num(l?.p999)}`, `${num(s.ok, 0)}/${num(s.sent, 0)}`, num(cpuPerRequest(run), 0), gc || 'none',
    e === null ? 'n/a' : `${num(e.p99Ms)} / ${num(e.maxMs)}`, o === null ? '—' : `${num(o.p50Ms)} / ${o.p99Overflow ? '>' : ''}${num(o.p99Ms)}`,
    run.server.meanBatchSize === null ? '—' : `${num(run.server.callsPer1000, 1)} (${num(run.server.meanBatchSize, 1)})`, `${num(run.generator.percent, 0)}%, ${num(s.sendLagMs?.p99)} ms`,
  ];
}

export function render(r: AddedLatencyResults): string {
  const caveats = r.runs.map((run) => generatorCaveat(`${run.rate}/s ${run.variant} round ${run.round + 1}`, run.segments[0]!.sendLagMs?.p99, run.generator.percent)).filter((c): c is string => c !== null);
  return [
    `## Added latency (open loop, ${r.quick ? 'BENCH_QUICK: a smoke run, not a measurement' : r.date})`,
    '',
    ...verdictTable(verdicts(r)),
    '',
    ...threeWayTable(floorRows(r)),
    '',
    ...table(['rate', 'variant', 'round', 'p50 / p99 / p99.9 ms', '2xx / sent', 'server CPU µs/req', 'GC pauses (ms)', 'event-loop delay p99 / max ms', 'sidecar_overhead p50 / p99 ms', 'calls / 1,000 (mean batch)', 'generator CPU, send lag p99'], r.runs.map(runRow)),
    '',
    `Sidecar env: ${Object.entries(r.sidecarEnv).map(([k, v]) => `${k}=${v}`).join(' ')}. sidecar_overhead_seconds starts at Fastify's request start: it cannot see a request's wait in the socket while the loop is busy, which the client's figures include.`,
    ...listSection('Problems and caveats', [...caveats, ...r.problems]),
    '',
  ].join('\n');
}

export const addedLatency: Phase<AddedLatencyResults> = {
  name: 'added-latency',
  question: 'What latency does the sidecar add at 1k/5k/10k req/s, what CPU per request against the floor, how many downstream calls?',
  verdicts,
  render,
  run: (log) =>
    withDownstream(log, async (ctx) => {
      const runs: LatencyRun[] = [];
      for (const rate of RATES) {
        // The contract floor at 5,000 req/s only, where CPU per request is judged.
        const variants = rate === 5000 ? VARIANTS.flatMap((v): Variant[] => (v === 'floor' ? ['floor', 'contract'] : [v])) : VARIANTS;
        for (let round = 0; round < ROUNDS; round++) {
          for (const variant of alternate(variants, round)) {
            runs.push({ ...(await openRun(ctx, { variant, label: `${rate}/s ${variant}`, round }, steady(rate))), rate });
            await sleep(300);
          }
        }
      }
      return { date: new Date().toISOString(), quick: QUICK, sidecarEnv: sidecarEnv('<downstream>'), downstreamHoldMs: DOWNSTREAM_HOLD_MS, runs, problems: ctx.problems };
    }),
};
