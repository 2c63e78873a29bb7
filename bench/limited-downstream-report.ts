/**
 * Verdicts and the markdown summary of bench/limited-downstream.ts: does the
 * sidecar, untuned, shield a downstream with a limit? The verdicts judge the
 * `defaults` variant only, against SPEC §10's targets for shape A (4 workers,
 * 50 ms + 0.5 ms/item) at 3,000 and 6,000 req/s, the capacity drop, and the
 * brief's for B at 800 req/s and for two sidecars. SPEC §10 adds "the same
 * must hold for other shapes": for a shape or rate in no target (C, say) the
 * same checks are derived from its capacity (under it: A@3,000's; over it:
 * A@6,000's, with 3,400/4,000 and 1.5 s / 100 ms scaled) and marked with *.
 * The other variants are there to compare against, never judged.
 */
import type { LimitedResults, LimitedRun, SideFigures, Verdict } from './limited-downstream-types.ts';

export const TARGETS = {
  /** Under capacity: share of requests answered 200, client p99 of the 2xx in full-batch call times, downstream queue wait p99. */
  underOkShare: 0.95,
  underP99Calls: 3,
  underQueueWaitMs: 50,
  /** Over capacity: 2xx/s as a share of maxItemsPerSecond(shape, 100) (A: 3,400 of 4,000), p99 in call times (A: 1.5 s of 100 ms), queue wait p99. */
  overGoodputOfCapacity: 0.85,
  overP99Calls: 15,
  overQueueWaitMs: 100,
  dropFollowsS: 2,
  dropRecoversS: 5,
  twoQueueWaitMs: 100,
  twoGoodputOfSingle: 0.9,
  /** Calls of the sidecar with fewer / the one with more. */
  twoShareRatio: 0.75,
} as const;

const NA = 'n/a';

function num(n: number | null | undefined, digits = 0): string {
  return n === null || n === undefined || !Number.isFinite(n) ? NA : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function pct(part: number, whole: number, digits = 1): string {
  return whole > 0 ? `${num((100 * part) / whole, digits)}%` : NA;
}

const judge = (value: number | null | undefined, ok: (v: number) => boolean): boolean | null =>
  value === null || value === undefined || !Number.isFinite(value) ? null : ok(value);

/** One full batch's call time on the shape (ms). */
function callMs(run: LimitedRun): number {
  return run.shape.latencyMs + 100 * run.shape.perItemMs;
}

function side(run: LimitedRun): SideFigures {
  return run.sides[0]!;
}

/** The targets a steady run is judged by: SPEC §10's where it names the run, derived from the capacity elsewhere (name marked *). */
function steadyVerdicts(run: LimitedRun): Verdict[] {
  const s = side(run);
  const named = run.shape.name === 'A' && (run.rate === 3000 || run.rate === 6000) ? 'spec' : run.shape.name === 'B' && run.rate === 800 ? 'brief' : null;
  const star = (name: string, derived: boolean): string => (derived ? `${name} *` : name);
  const capacity = run.downstream?.capacity ?? null;
  const qw = run.downstream?.queueWaitP99Ms;
  const p99 = s.okLatencyMs?.p99 ?? null;
  const out: Verdict[] = [];
  const add = (name: string, result: string, target: string, pass: boolean | null): void => void out.push({ run: run.key, name, result, target, pass });
  if (capacity === null || run.rate <= capacity) {
    const derived = named === null;
    const p99Max = TARGETS.underP99Calls * callMs(run);
    add(star('answered 200', derived), pct(s.ok, s.requests), `≥ ${TARGETS.underOkShare * 100}% of offered`, judge(s.okShare, (v) => v >= TARGETS.underOkShare));
    add(star('client p99 of the 2xx', derived), `${num(p99)} ms`, `≤ ${num(p99Max)} ms`, judge(p99, (v) => v <= p99Max));
    // B's target names neither of these two: derived there too.
    add(star('downstream queue wait p99', derived || named === 'brief'), `${num(qw, 1)} ms`, `≤ ${TARGETS.underQueueWaitMs} ms`, judge(qw, (v) => v <= TARGETS.underQueueWaitMs));
    add(star('503s', derived || named === 'brief'), String(s.shed), 'none', s.shed === 0);
    return out;
  }
  const derived = named === null;
  const goodputMin = TARGETS.overGoodputOfCapacity * capacity;
  const p99Max = TARGETS.overP99Calls * callMs(run);
  const rest = s.requests - s.ok;
  add(star('2xx/s', derived), num(s.goodput), `≥ ${num(goodputMin)}`, judge(s.goodput, (v) => v >= goodputMin));
  add(star('client p99 of the 2xx', derived), `${num(p99)} ms`, `≤ ${num(p99Max)} ms`, judge(p99, (v) => v <= p99Max));
  add(
    star('the rest: 503 with retry-after', derived),
    `${s.shedWithRetryAfter} of ${rest} (${s.errorCount} socket errors, ${s.unfinished} unanswered, ${s.neverWritten} never written)`,
    'all of them',
    s.shedWithRetryAfter === rest && s.errorCount === 0 && s.unfinished === 0 && s.neverWritten === 0,
  );
  add(star('downstream queue wait p99', derived), `${num(qw, 1)} ms`, `≤ ${TARGETS.overQueueWaitMs} ms`, judge(qw, (v) => v <= TARGETS.overQueueWaitMs));
  return out;
}

function dropVerdicts(run: LimitedRun): Verdict[] {
  const d = run.drop;
  if (d === null) return [];
  const never = (v: number | null): string => (v === null ? 'never' : `${num(v, 2)} s`);
  return [
    {
      run: run.key,
      name: `call limit follows the drop to ${d.droppedWorkers} workers (≤ ${d.droppedWorkers + 1})`,
      result: never(d.followsWithinS),
      target: `≤ ${TARGETS.dropFollowsS} s`,
      pass: d.followsWithinS === null ? (run.sides[0]?.limit === null ? null : false) : d.followsWithinS <= TARGETS.dropFollowsS,
    },
    {
      run: run.key,
      name: `call limit recovers with ${run.shape.workers} workers (≥ ${run.shape.workers})`,
      result: never(d.recoversWithinS),
      target: `≤ ${TARGETS.dropRecoversS} s`,
      pass: d.recoversWithinS === null ? (run.sides[0]?.limit === null ? null : false) : d.recoversWithinS <= TARGETS.dropRecoversS,
    },
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

function twoVerdicts(run: LimitedRun, r: LimitedResults): Verdict[] {
  const f = twoFigures(run);
  const single = r.runs.find((x) => x.kind === 'steady' && x.variant === 'defaults' && x.shape.name === 'A' && x.rate === run.rate * run.sides.length);
  const ratio = single === undefined || side(single).goodput <= 0 ? null : f.goodput / side(single).goodput;
  const qw = run.downstream?.queueWaitP99Ms;
  return [
    { run: run.key, name: 'downstream queue wait p99', result: `${num(qw, 1)} ms`, target: `≤ ${TARGETS.twoQueueWaitMs} ms`, pass: judge(qw, (v) => v <= TARGETS.twoQueueWaitMs) },
    {
      run: run.key,
      name: 'total 2xx/s against one sidecar at the same total rate',
      result: single === undefined ? `${num(f.goodput)} 2xx/s (no single run to compare)` : `${num(f.goodput)} / ${num(side(single).goodput)} = ${num(ratio, 2)}×`,
      target: `≥ ${TARGETS.twoGoodputOfSingle}×`,
      pass: judge(ratio, (v) => v >= TARGETS.twoGoodputOfSingle),
    },
    {
      run: run.key,
      name: 'shares of downstream calls (smaller / larger)',
      result: f.shares.length === 0 ? NA : `${f.shares.map((s) => `${num(100 * s, 1)}%`).join(' / ')} = ${num(f.shareRatio, 2)}`,
      target: `≥ ${TARGETS.twoShareRatio}`,
      pass: judge(f.shareRatio, (v) => v >= TARGETS.twoShareRatio),
    },
  ];
}

/** The verdicts on every `defaults` run. */
export function limitedVerdicts(r: LimitedResults): Verdict[] {
  const out: Verdict[] = [];
  for (const run of r.runs) {
    if (run.variant !== 'defaults' && run.variant !== 'stamped') continue;
    if (run.kind === 'steady') out.push(...steadyVerdicts(run));
    else if (run.kind === 'drop') out.push(...dropVerdicts(run));
    else out.push(...twoVerdicts(run, r));
  }
  return out;
}

function limitCell(s: SideFigures): string {
  return s.limit === null ? NA : `${num(s.limit.min)} / ${num(s.limit.mean, 1)} / ${num(s.limit.max)}`;
}

function runRows(r: LimitedResults): string[] {
  const rows = [
    '| run | variant | offered | 2xx/s | in time /s | 2xx ÷ offered | p50 / p99 2xx (ms) | 503 (retry-after) | 504 | errors / unanswered / never written | batch (sidecar) | downstream items/s | ÷ capacity | queue wait p99 (ms) | sidecar CPU | generator CPU | call limit min / mean / max |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const run of r.runs) {
    const ds = run.downstream;
    run.sides.forEach((s, i) => {
      const name = run.sides.length > 1 ? `${run.key} #${i + 1}` : run.key;
      const errors = Object.entries(s.errors).map(([code, n]) => `${n} ${code}`).join(', ');
      rows.push(
        `| ${name} | ${run.variant} | ${num(s.offered)} | ${num(s.goodput)} | ${num(s.inTimeGoodput)} | ${num(s.okShare, 3)} | ${num(s.okLatencyMs?.p50)} / ${num(s.okLatencyMs?.p99)} | ` +
          `${pct(s.shed, s.requests)} (${pct(s.shedWithRetryAfter, s.shed, 0)}) | ${pct(s.status504, s.requests)} | ${s.errorCount}${errors === '' ? '' : ` (${errors})`} / ${s.unfinished} / ${s.neverWritten} | ` +
          `${num(s.meanBatchSize, 1)} | ${i === 0 ? num(ds?.itemsPerSecond) : '″'} | ${i === 0 ? num(ds?.capacityRatio, 2) : '″'} | ${i === 0 ? num(ds?.queueWaitP99Ms, 1) : '″'} | ` +
          `${num(s.sidecarCpuPercent)}% | ${num(s.generatorCpuPercent)}% | ${limitCell(s)} |`,
      );
    });
  }
  return rows;
}

function dropSection(run: LimitedRun): string[] {
  const d = run.drop!;
  const out = [
    '',
    `### Capacity drop, ${run.variant}: ${run.shape.workers} → ${d.droppedWorkers} workers at ${num(d.dropAtS, 1)} s (answered at ${num(d.droppedAtS, 2)} s), back at ${num(d.restoreAtS, 1)} s (${num(d.restoredAtS, 2)} s)`,
    '',
    `Call limit follows within ${d.followsWithinS === null ? 'never' : `${num(d.followsWithinS, 2)} s`}, recovers within ${d.recoversWithinS === null ? 'never' : `${num(d.recoversWithinS, 2)} s`}` +
      `${run.sides[0]?.limit === null ? ' (no sidecar_downstream_concurrency_limit gauge at /metrics)' : ''}.`,
    '',
    '| second (of intended send time) | call limit (samples, every 250 ms) | sent | 2xx | 503 | other / none |',
    '|--:|---|--:|--:|--:|--:|',
  ];
  for (const sec of d.perSecond) {
    const limits = d.series.filter((p) => p.t >= sec.t && p.t < sec.t + 1).map((p) => num(p.limit));
    out.push(`| ${num(sec.t)} | ${limits.length === 0 ? NA : limits.join(' ')} | ${sec.sent} | ${sec.ok} | ${sec.shed} | ${sec.other} |`);
  }
  return out;
}

function twoSection(run: LimitedRun): string[] {
  const f = twoFigures(run);
  const rows = [
    '',
    `### Two sidecars, ${run.variant}: ${run.sides.length} × ${num(run.rate)} req/s, one shape-${run.shape.name} downstream`,
    '',
    `Total ${num(f.goodput)} 2xx/s; downstream queue wait p99 ${num(run.downstream?.queueWaitP99Ms, 1)} ms; call shares ${f.shares.length === 0 ? NA : f.shares.map((s) => `${num(100 * s, 1)}%`).join(' / ')}.`,
    '',
    '| sidecar | 2xx/s | p99 2xx (ms) | 503 | downstream calls | mean batch | call limit min / mean / max |',
    '|--:|--:|--:|--:|--:|--:|---|',
  ];
  run.sides.forEach((s, i) => rows.push(`| ${i + 1} | ${num(s.goodput)} | ${num(s.okLatencyMs?.p99)} | ${s.shed} | ${num(s.calls)} | ${num(s.meanBatchSize, 1)} | ${limitCell(s)} |`));
  return rows;
}

/** Runs the generator may have bent (it sent late, or used most of a core). */
function caveats(r: LimitedResults): string[] {
  const out: string[] = [];
  for (const run of r.runs) {
    run.sides.forEach((s, i) => {
      const parts: string[] = [];
      if (s.sendLagP99Ms !== null && s.sendLagP99Ms > 50) parts.push(`sent late (send lag p99 ${num(s.sendLagP99Ms)} ms, counted in its latency)`);
      if (s.generatorCpuPercent >= 90) parts.push(`used ${num(s.generatorCpuPercent)}% of a core`);
      if (parts.length > 0) out.push(`${run.key}${run.sides.length > 1 ? ` #${i + 1}` : ''} ${run.variant}: the generator ${parts.join(' and ')}`);
      for (const line of s.problems) out.push(`${run.key} ${run.variant}: the sidecar logged: ${line}`);
    });
  }
  return out;
}

export function renderLimited(r: LimitedResults): string {
  const lines = [
    '## A downstream with a limit, untuned (bench/limited-downstream.ts)',
    '',
    `${r.quick ? '**BENCH_QUICK: a smoke test, not a measurement.** ' : ''}${r.date}, ${r.cpus} CPUs, load average ${num(r.loadAverageAtStart, 2)} → ${num(r.loadAverageAtEnd, 2)}; ` +
      `open loop, ${r.connections} connections, ${r.durationsSeconds.warmup} s warm-up, ${r.durationsSeconds.measure} s measured (drop: ${r.durationsSeconds.drop} s); ` +
      `every run with fresh processes (downstream, sidecar, generator). Variants: ${r.selected.variants.join(', ')}${r.baseRef === null ? '' : ` (base = ${r.baseRef})`}.`,
    '',
    '| shape | workers | call cost | capacity (full batches of 100) |',
    '|---|--:|---|--:|',
    ...r.shapes.map((s) => `| ${s.name} | ${s.workers} | ${s.latencyMs} ms + ${s.perItemMs} ms/item | ${num(s.capacity)} items/s |`),
    '',
    ...runRows(r),
    '',
    'Latency from each request\'s intended send time; 2xx/s: 2xx answers to the window\'s requests (late ones included) per second of the window, 2xx ÷ offered: over the requests due in it; 503 (retry-after): the share of 503s that carried it; ' +
      'batch (sidecar): sidecar_batch_size over the window; queue wait: the downstream\'s own (its GET /stats, reset when the window opened); ' +
      'CPU: % of one core; call limit: sidecar_downstream_concurrency_limit every 250 ms (n/a: no such gauge).',
  ];
  const verdicts = limitedVerdicts(r);
  if (verdicts.length > 0) {
    lines.push('', '### Verdicts (defaults only)', '', '| run | check | result | target | verdict |', '|---|---|---|---|---|');
    for (const v of verdicts) lines.push(`| ${v.run} | ${v.name} | ${v.result} | ${v.target} | ${v.pass === null ? NA : v.pass ? '**PASS**' : '**FAIL**'} |`);
    if (verdicts.some((v) => v.name.endsWith(' *'))) lines.push('', '\\* derived, not a stated target: SPEC §10 "the same must hold for other shapes", scaled to the shape\'s capacity and full-batch call time.');
  }
  for (const run of r.runs) if (run.drop !== null) lines.push(...dropSection(run));
  for (const run of r.runs) if (run.kind === 'two') lines.push(...twoSection(run));
  const notes = [...caveats(r), ...r.problems];
  if (notes.length > 0) lines.push('', '### Problems and caveats', '', ...notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}
