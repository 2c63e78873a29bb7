/**
 * The results of the limited-downstream phase (bench/phases/limited-downstream.ts),
 * their verdicts and their markdown. The verdicts judge the `defaults` and
 * `stamped` variants only: SPEC §10's targets for shape A at 3,000 and 6,000
 * req/s and the capacity drop, the brief's for B at 800 req/s and two
 * sidecars; for a shape or rate in no target (C, say) the same checks derived
 * from its capacity and full-batch call time, marked *. The other variants are
 * there to compare against.
 */
import type { Percentiles } from '../kit/stats.ts';
import { listSection, NA, num, table, verdictCell, type Verdict } from '../kit/report.ts';

/** A downstream with a limit: `workers` calls at once, each latencyMs + perItemMs × items; queueLimit 0: an unbounded FIFO. */
export type Shape = { readonly name: string } & { readonly [K in 'workers' | 'latencyMs' | 'perItemMs' | 'queueLimit']: number };

/** defaults: no tuning variable; stamped: the same, the generator stamping x-request-start; hand-tuned: to the shape; base: an older commit. */
export type VariantName = 'defaults' | 'stamped' | 'hand-tuned' | 'base';
export type RunKind = 'steady' | 'drop' | 'two';
export type LimitFigures = { readonly min: number; readonly mean: number; readonly max: number; readonly samples: number };

/**
 * One sidecar over the measured window, from its generator, /metrics and
 * /proc. goodput: 2xx to the window's requests per second, okShare: of those
 * due; neverWritten: requests of the whole schedule never written to a socket;
 * limit: sidecar_downstream_concurrency_limit every 250 ms (null: no such gauge).
 */
export type SideFigures = {
  readonly [K in 'offered' | 'requests' | 'ok' | 'goodput' | 'okShare' | 'inTimeGoodput' | 'servedPerSecond' | 'shed' | 'shedWithRetryAfter' | 'status504' | 'errorCount' | 'unfinished' | 'neverWritten' | 'generatorCpuPercent']: number;
} & { readonly [K in 'sendLagP99Ms' | 'meanBatchSize' | 'calls' | 'sidecarCpuPercent']: number | null } & { readonly [K in 'okLatencyMs' | 'latencyMs']: Percentiles | null } & {
  readonly statuses: Record<string, number>;
  readonly errors: Record<string, number>;
  readonly outcomes: Record<string, number> | null;
  readonly limit: LimitFigures | null;
  readonly problems: string[];
};

/** The downstream's GET /stats over the window; capacity: full batches of 100 on every worker. */
export type DownstreamFigures = { readonly capacity: number; readonly capacityRatio: number | null } & {
  readonly [K in 'batches' | 'items' | 'itemsPerSecond' | 'callsPerSecond' | 'queueWaitP50Ms' | 'queueWaitP99Ms' | 'queueWaitMaxMs' | 'holdP99Ms' | 'refused' | 'meanBatchSize']: number | null;
};

/**
 * A capacity drop: planned and answered times of the two POST /control
 * calls (s after the window opened), the call limit over time, when it
 * followed (≤ droppedWorkers + 1) and recovered (≥ the workers), by second.
 */
export type DropFigures = { readonly [K in 'dropAtS' | 'restoreAtS' | 'droppedWorkers']: number } & {
  readonly [K in 'droppedAtS' | 'restoredAtS' | 'followsWithinS' | 'recoversWithinS']: number | null;
} & {
  readonly series: { readonly t: number; readonly limit: number }[];
  readonly perSecond: { readonly t: number; readonly sent: number; readonly ok: number; readonly shed: number; readonly other: number }[];
};

export type LimitedRun = { readonly [K in 'rate' | 'windowSeconds' | 'loadAverage']: number } & {
  readonly key: string;
  readonly kind: RunKind;
  readonly shape: Shape;
  readonly variant: VariantName;
  readonly env: Record<string, string>;
  readonly sides: SideFigures[];
  readonly downstream: DownstreamFigures | null;
  readonly drop: DropFigures | null;
};

export type LimitedResults = { readonly [K in 'cpus' | 'loadAverageAtStart' | 'loadAverageAtEnd' | 'wallSeconds' | 'connections']: number } & {
  readonly date: string;
  readonly quick: boolean;
  readonly durationsSeconds: { readonly warmup: number; readonly measure: number; readonly drop: number; readonly drain: number };
  readonly baseRef: string | null;
  readonly selected: { readonly shapes: string[]; readonly variants: VariantName[] };
  readonly shapes: (Shape & { readonly capacity: number })[];
  readonly runs: LimitedRun[];
  readonly problems: string[];
};

export type LimitedVerdict = Verdict & { readonly run: string };

/**
 * Under capacity: the share answered 200, the p99 of the 2xx in full-batch
 * call times, the queue wait p99; over it: 2xx/s of the capacity (A: 3,400 of
 * 4,000), the p99 in call times (A: 1.5 s), the queue wait p99; the drop;
 * two sidecars (the share: calls of the one with fewer / the one with more).
 */
export const TARGETS = {
  ...{ underOkShare: 0.95, underP99Calls: 3, underQueueWaitMs: 50, overGoodputOfCapacity: 0.85, overP99Calls: 15, overQueueWaitMs: 100 },
  ...{ dropFollowsS: 2, dropRecoversS: 5, twoQueueWaitMs: 100, twoGoodputOfSingle: 0.9, twoShareRatio: 0.75 },
} as const;

const pct = (part: number, whole: number, digits = 1): string => (whole > 0 ? `${num((100 * part) / whole, digits)}%` : NA);
const judge = (v: number | null | undefined, ok: (v: number) => boolean): boolean | null => (v === null || v === undefined || !Number.isFinite(v) ? null : ok(v));
const callMs = (run: LimitedRun): number => run.shape.latencyMs + 100 * run.shape.perItemMs;

function steadyVerdicts(run: LimitedRun): LimitedVerdict[] {
  const s = run.sides[0]!;
  const named = run.shape.name === 'A' && (run.rate === 3000 || run.rate === 6000) ? 'spec' : run.shape.name === 'B' && run.rate === 800 ? 'brief' : null;
  const star = (name: string, derived: boolean): string => (derived ? `${name} *` : name);
  const capacity = run.downstream?.capacity ?? null;
  const qw = run.downstream?.queueWaitP99Ms;
  const p99 = s.okLatencyMs?.p99 ?? null;
  const out: LimitedVerdict[] = [];
  const add = (name: string, result: string, target: string, pass: boolean | null): void => void out.push({ run: run.key, name, result, target, pass });
  const derived = named === null;
  if (capacity === null || run.rate <= capacity) {
    const p99Max = TARGETS.underP99Calls * callMs(run);
    add(star('answered 200', derived), pct(s.ok, s.requests), `≥ ${TARGETS.underOkShare * 100}% of offered`, judge(s.okShare, (v) => v >= TARGETS.underOkShare));
    add(star('client p99 of the 2xx', derived), `${num(p99, 0)} ms`, `≤ ${num(p99Max, 0)} ms`, judge(p99, (v) => v <= p99Max));
    // B's target names neither of these two: derived there too.
    add(star('downstream queue wait p99', derived || named === 'brief'), `${num(qw, 1)} ms`, `≤ ${TARGETS.underQueueWaitMs} ms`, judge(qw, (v) => v <= TARGETS.underQueueWaitMs));
    add(star('503s', derived || named === 'brief'), String(s.shed), 'none', s.shed === 0);
    return out;
  }
  const goodputMin = TARGETS.overGoodputOfCapacity * capacity;
  const p99Max = TARGETS.overP99Calls * callMs(run);
  const rest = s.requests - s.ok;
  add(star('2xx/s', derived), num(s.goodput, 0), `≥ ${num(goodputMin, 0)}`, judge(s.goodput, (v) => v >= goodputMin));
  add(star('client p99 of the 2xx', derived), `${num(p99, 0)} ms`, `≤ ${num(p99Max, 0)} ms`, judge(p99, (v) => v <= p99Max));
  const restOk = s.shedWithRetryAfter === rest && s.errorCount === 0 && s.unfinished === 0 && s.neverWritten === 0;
  add(star('the rest: 503 with retry-after', derived), `${s.shedWithRetryAfter} of ${rest} (${s.errorCount} socket errors, ${s.unfinished} unanswered, ${s.neverWritten} never written)`, 'all of them', restOk);
  add(star('downstream queue wait p99', derived), `${num(qw, 1)} ms`, `≤ ${TARGETS.overQueueWaitMs} ms`, judge(qw, (v) => v <= TARGETS.overQueueWaitMs));
  return out;
}

function dropVerdicts(run: LimitedRun): LimitedVerdict[] {
  const d = run.drop!;
  const never = (v: number | null): string => (v === null ? 'never' : `${num(v, 2)} s`);
  const pass = (v: number | null, max: number): boolean | null => (v === null ? (run.sides[0]?.limit === null ? null : false) : v <= max);
  return [
    { run: run.key, name: `call limit follows the drop to ${d.droppedWorkers} workers (≤ ${d.droppedWorkers + 1})`, result: never(d.followsWithinS), target: `≤ ${TARGETS.dropFollowsS} s`, pass: pass(d.followsWithinS, TARGETS.dropFollowsS) },
    { run: run.key, name: `call limit recovers with ${run.shape.workers} workers (≥ ${run.shape.workers})`, result: never(d.recoversWithinS), target: `≤ ${TARGETS.dropRecoversS} s`, pass: pass(d.recoversWithinS, TARGETS.dropRecoversS) },
  ];
}

/** Total 2xx/s of the sidecars, and the smaller share of downstream calls over the larger. */
export function twoFigures(run: LimitedRun): { goodput: number; shares: number[]; shareRatio: number | null } {
  const goodput = run.sides.reduce((a, s) => a + s.goodput, 0);
  const calls = run.sides.map((s) => s.calls);
  if (calls.some((c) => c === null)) return { goodput, shares: [], shareRatio: null };
  const total = (calls as number[]).reduce((a, b) => a + b, 0);
  const shares = (calls as number[]).map((c) => (total > 0 ? c / total : 0));
  const most = Math.max(...shares);
  return { goodput, shares, shareRatio: most > 0 ? Math.min(...shares) / most : null };
}

function twoVerdicts(run: LimitedRun, r: LimitedResults): LimitedVerdict[] {
  const f = twoFigures(run);
  const single = r.runs.find((x) => x.kind === 'steady' && x.variant === 'defaults' && x.shape.name === 'A' && x.rate === run.rate * run.sides.length)?.sides[0];
  const x = single === undefined || single.goodput <= 0 ? null : f.goodput / single.goodput;
  const qw = run.downstream?.queueWaitP99Ms;
  const shares = f.shares.length === 0 ? NA : `${f.shares.map((s) => `${num(100 * s, 1)}%`).join(' / ')} = ${num(f.shareRatio, 2)}`;
  return [
    { run: run.key, name: 'downstream queue wait p99', result: `${num(qw, 1)} ms`, target: `≤ ${TARGETS.twoQueueWaitMs} ms`, pass: judge(qw, (v) => v <= TARGETS.twoQueueWaitMs) },
    { run: run.key, name: 'total 2xx/s against one sidecar at the same total rate', result: single === undefined ? `${num(f.goodput, 0)} 2xx/s (no single run to compare)` : `${num(f.goodput, 0)} / ${num(single.goodput, 0)} = ${num(x, 2)}×`, target: `≥ ${TARGETS.twoGoodputOfSingle}×`, pass: judge(x, (v) => v >= TARGETS.twoGoodputOfSingle) },
    { run: run.key, name: 'shares of downstream calls (smaller / larger)', result: shares, target: `≥ ${TARGETS.twoShareRatio}`, pass: judge(f.shareRatio, (v) => v >= TARGETS.twoShareRatio) },
  ];
}

export function limitedVerdicts(r: LimitedResults): LimitedVerdict[] {
  const judged = r.runs.filter((run) => run.variant === 'defaults' || run.variant === 'stamped');
  return judged.flatMap((run) => (run.kind === 'steady' ? steadyVerdicts(run) : run.kind === 'drop' ? dropVerdicts(run) : twoVerdicts(run, r)));
}

const limitCell = (s: SideFigures): string => (s.limit === null ? NA : `${num(s.limit.min, 0)} / ${num(s.limit.mean, 1)} / ${num(s.limit.max, 0)}`);

function runRows(r: LimitedResults): string[][] {
  return r.runs.flatMap((run) =>
    run.sides.map((s, i) => {
      const ds = run.downstream;
      const same = (v: string): string => (i === 0 ? v : '″');
      const errors = Object.entries(s.errors).map(([code, n]) => `${n} ${code}`).join(', ');
      return [
        run.sides.length > 1 ? `${run.key} #${i + 1}` : run.key, run.variant, num(s.offered, 0), num(s.goodput, 0), num(s.inTimeGoodput, 0), num(s.okShare, 3), `${num(s.okLatencyMs?.p50, 0)} / ${num(s.okLatencyMs?.p99, 0)}`,
        `${pct(s.shed, s.requests)} (${pct(s.shedWithRetryAfter, s.shed, 0)})`, pct(s.status504, s.requests), `${s.errorCount}${errors === '' ? '' : ` (${errors})`} / ${s.unfinished} / ${s.neverWritten}`, num(s.meanBatchSize, 1),
        same(num(ds?.itemsPerSecond, 0)), same(num(ds?.capacityRatio, 2)), same(num(ds?.queueWaitP99Ms, 1)), `${num(s.sidecarCpuPercent, 0)}%`, `${num(s.generatorCpuPercent, 0)}%`, limitCell(s),
      ];
    }),
  );
}

function dropSection(run: LimitedRun): string[] {
  const d = run.drop!;
  const rows = d.perSecond.map((sec) => {
    const limits = d.series.filter((p) => p.t >= sec.t && p.t < sec.t + 1).map((p) => num(p.limit, 0));
    return [num(sec.t, 0), limits.length === 0 ? NA : limits.join(' '), String(sec.sent), String(sec.ok), String(sec.shed), String(sec.other)];
  });
  return [
    '',
    `### Capacity drop, ${run.variant}: ${run.shape.workers} → ${d.droppedWorkers} workers at ${num(d.dropAtS)} s (answered at ${num(d.droppedAtS, 2)} s), back at ${num(d.restoreAtS)} s (${num(d.restoredAtS, 2)} s)`,
    '',
    ...table(['second (of intended send time)', 'call limit (every 250 ms)', 'sent', '2xx', '503', 'other / none'], rows),
  ];
}

function twoSection(run: LimitedRun): string[] {
  const rows = run.sides.map((s, i) => [String(i + 1), num(s.goodput, 0), num(s.okLatencyMs?.p99, 0), String(s.shed), num(s.calls, 0), num(s.meanBatchSize, 1), limitCell(s)]);
  return ['', `### Two sidecars, ${run.variant}: ${run.sides.length} × ${num(run.rate, 0)} req/s, one shape-${run.shape.name} downstream`, '', ...table(['sidecar', '2xx/s', 'p99 2xx (ms)', '503', 'downstream calls', 'mean batch', 'call limit min / mean / max'], rows)];
}

/** Runs the generator may have bent (it sent late, or used most of a core), and what the sidecars logged. */
function caveats(r: LimitedResults): string[] {
  return r.runs.flatMap((run) =>
    run.sides.flatMap((s, i) => {
      const who = `${run.key}${run.sides.length > 1 ? ` #${i + 1}` : ''} ${run.variant}`;
      const parts = [...(s.sendLagP99Ms !== null && s.sendLagP99Ms > 50 ? [`sent late (send lag p99 ${num(s.sendLagP99Ms, 0)} ms)`] : []), ...(s.generatorCpuPercent >= 90 ? [`used ${num(s.generatorCpuPercent, 0)}% of a core`] : [])];
      return [...(parts.length > 0 ? [`${who}: the generator ${parts.join(' and ')}`] : []), ...s.problems.map((line) => `${who}: the sidecar logged: ${line}`)];
    }),
  );
}

export function renderLimited(r: LimitedResults): string {
  const verdicts = limitedVerdicts(r);
  const header = ['run', 'variant', 'offered', '2xx/s', 'in time /s', '2xx ÷ offered', 'p50 / p99 2xx (ms)', '503 (retry-after)', '504', 'errors / unanswered / never written', 'batch', 'downstream items/s', '÷ capacity', 'queue wait p99 (ms)', 'sidecar CPU', 'generator CPU', 'call limit min / mean / max'];
  const lines = [
    `## A downstream with a limit, untuned${r.quick ? ' (BENCH_QUICK: a smoke run, not a measurement)' : ''}`,
    '',
    `${r.date}, ${r.cpus} CPUs, load average ${num(r.loadAverageAtStart, 2)} → ${num(r.loadAverageAtEnd, 2)}; open loop, ${r.connections} connections, ${r.durationsSeconds.warmup} s warm-up, ${r.durationsSeconds.measure} s measured (drop: ${r.durationsSeconds.drop} s); fresh processes every run. Variants: ${r.selected.variants.join(', ')}${r.baseRef === null ? '' : ` (base = ${r.baseRef})`}.`,
    '',
    ...table(['run', 'check', 'result', 'target', 'verdict'], verdicts.map((v) => [v.run, v.name, v.result, v.target, verdictCell(v)])),
    ...(verdicts.some((v) => v.name.endsWith(' *')) ? ['', '\\* derived, not a stated target: SPEC §10 "the same must hold for other shapes", scaled to the shape\'s capacity and full-batch call time.'] : []),
    '',
    ...table(['shape', 'workers', 'call cost', 'capacity (full batches of 100)'], r.shapes.map((s) => [s.name, String(s.workers), `${s.latencyMs} ms + ${s.perItemMs} ms/item`, `${num(s.capacity, 0)} items/s`])),
    '',
    ...table(header, runRows(r)),
    '',
    "Latency from each request's intended send time; 2xx/s: 2xx answers to the window's requests per second of the window; queue wait: the downstream's own (GET /stats, reset when the window opened); CPU: % of one core; call limit: sidecar_downstream_concurrency_limit every 250 ms.",
    ...r.runs.filter((run) => run.drop !== null).flatMap(dropSection),
    ...r.runs.filter((run) => run.kind === 'two').flatMap(twoSection),
    ...listSection('Problems and caveats', [...caveats(r), ...r.problems]),
  ];
  return `${lines.join('\n')}\n`;
}
