/**
 * Verdicts and the markdown summary of bench/hot-path.ts (issue 10). Rounds
 * are combined by their median (the mean of the two middle ones for an even
 * count); every verdict is a ratio or a difference against the bare route
 * measured in the same run, apart from the absolute limits the issue sets
 * (15 ms added p99, 5 ms scavenge, 1 s burst p99).
 */
import type { BurstRunFigures, ClosedRunFigures, HotPathResults, OpenRunFigures, Variant } from './hot-path.ts';

/** Issue 10's targets. */
export const TARGETS = {
  addedP99Ms: 15,
  scavengeMaxMsAt5k: 5,
  cpuPerRequestRatio: 1.3,
  throughputRatio: 0.9,
  peakRssRatio: 1.5,
  burstP99Ms: 1000,
  goodputRatio: 0.6,
  /** Recovered: p99 of the steady rate from graceS after the burst ≤ the pre-burst p99 + this. */
  recoveryMarginMs: 15,
  fairnessP99Ratio: 2,
} as const;

export interface Verdict {
  readonly name: string;
  readonly result: string;
  readonly target: string;
  /** null: could not be judged (a figure is missing). */
  readonly pass: boolean | null;
}

const NA = 'n/a';

function num(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || !Number.isFinite(n) ? NA : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function median(values: readonly (number | null | undefined)[]): number | null {
  const v = values.filter((x): x is number => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

function max(values: readonly (number | null | undefined)[]): number | null {
  const v = values.filter((x): x is number => x !== null && x !== undefined && Number.isFinite(x));
  return v.length === 0 ? null : Math.max(...v);
}

function judge(value: number | null, ok: (v: number) => boolean): boolean | null {
  return value === null ? null : ok(value);
}

function runsOf<T extends { variant: Variant }>(runs: readonly T[], variant: Variant): T[] {
  return runs.filter((r) => r.variant === variant);
}

/** The largest young-generation pause (Scavenge, Minor Mark-Sweep) in a run. */
function youngMaxMs(run: OpenRunFigures): number | null {
  let out: number | null = null;
  for (const [kind, f] of Object.entries(run.server.gc)) {
    if (/^(Scavenge|Minor)/.test(kind) && (out === null || f.maxMs > out)) out = f.maxMs;
  }
  return out ?? (Object.keys(run.server.gc).length === 0 ? null : 0);
}

export interface RateSummary {
  readonly rate: number;
  readonly sidecarP99: number | null;
  readonly bareP99: number | null;
  /** What was subtracted for the downstream: the median of its measured p99 over the sidecar runs, else the nominal hold. */
  readonly downstreamP99: number;
  readonly downstreamMeasured: boolean;
  readonly addedP99: number | null;
  readonly cpuRatio: number | null;
}

export function rateSummaries(r: HotPathResults): RateSummary[] {
  const rates = [...new Set(r.latency.map((run) => run.rate))];
  return rates.map((rate) => {
    const at = r.latency.filter((run) => run.rate === rate);
    const sidecarP99 = median(runsOf(at, 'sidecar').map((run) => run.measured.latencyMs?.p99));
    const bareP99 = median(runsOf(at, 'bare').map((run) => run.measured.latencyMs?.p99));
    const sidecarCpu = median(runsOf(at, 'sidecar').map((run) => run.cpuUsPerRequest));
    const bareCpu = median(runsOf(at, 'bare').map((run) => run.cpuUsPerRequest));
    // Results written before the downstream reported its stats have no downstreamP99Ms.
    const measuredDownstream = median(runsOf(at, 'sidecar').map((run) => run.downstreamP99Ms));
    const downstreamP99 = measuredDownstream ?? r.downstreamHoldMs;
    return {
      rate,
      sidecarP99,
      bareP99,
      downstreamP99,
      downstreamMeasured: measuredDownstream !== null,
      addedP99: sidecarP99 === null || bareP99 === null ? null : sidecarP99 - downstreamP99 - bareP99,
      cpuRatio: sidecarCpu === null || bareCpu === null || bareCpu <= 0 ? null : sidecarCpu / bareCpu,
    };
  });
}

function ratioOf(runs: readonly ClosedRunFigures[], pick: (run: ClosedRunFigures) => number | null): number | null {
  const s = median(runsOf(runs, 'sidecar').map(pick));
  const b = median(runsOf(runs, 'bare').map(pick));
  return s === null || b === null || b <= 0 ? null : s / b;
}

function segment(run: BurstRunFigures | undefined, label: string) {
  return run?.segments.find((s) => s.label === label);
}

export function hotPathVerdicts(r: HotPathResults): Verdict[] {
  const out: Verdict[] = [];
  for (const s of rateSummaries(r)) {
    out.push({
      name: `1. added p99 at ${num(s.rate, 0)} req/s (sidecar p99 − ${s.downstreamMeasured ? 'downstream p99 (measured)' : `downstream hold (nominal ${r.downstreamHoldMs} ms)`} − bare p99)`,
      result: `${num(s.sidecarP99)} − ${num(s.downstreamP99)} − ${num(s.bareP99)} = ${num(s.addedP99)} ms`,
      target: `≤ ${TARGETS.addedP99Ms} ms`,
      pass: judge(s.addedP99, (v) => v <= TARGETS.addedP99Ms),
    });
  }
  const at5k = runsOf(r.latency.filter((run) => run.rate === 5000), 'sidecar');
  if (at5k.length > 0) {
    const young = max(at5k.map(youngMaxMs));
    out.push({
      name: '1. largest scavenge pause of the sidecar at 5,000 req/s (--trace-gc)',
      result: `${num(young, 2)} ms`,
      target: `≤ ${TARGETS.scavengeMaxMsAt5k} ms`,
      pass: judge(young, (v) => v <= TARGETS.scavengeMaxMsAt5k),
    });
    const cpu = rateSummaries(r).find((s) => s.rate === 5000)?.cpuRatio ?? null;
    out.push({
      name: '2. server CPU per request at 5,000 req/s, sidecar / bare',
      result: `${num(cpu, 2)}×`,
      target: `≤ ${TARGETS.cpuPerRequestRatio}×`,
      pass: judge(cpu, (v) => v <= TARGETS.cpuPerRequestRatio),
    });
  }
  if (r.closed.length > 0) {
    const thr = ratioOf(r.closed, (run) => run.okPerSecond);
    const rss = ratioOf(r.closed, (run) => run.server.peakRssBytes);
    const p99 = ratioOf(r.closed, (run) => run.p99Ms);
    out.push({ name: `2. closed-loop throughput (${r.connections.closed} connections), sidecar / bare`, result: `${num(thr, 2)}×`, target: `≥ ${TARGETS.throughputRatio}×`, pass: judge(thr, (v) => v >= TARGETS.throughputRatio) });
    out.push({ name: `2. peak RSS at ${r.connections.closed} connections, sidecar / bare`, result: `${num(rss, 2)}×`, target: `≤ ${TARGETS.peakRssRatio}×`, pass: judge(rss, (v) => v <= TARGETS.peakRssRatio) });
    out.push({ name: `4. fairness: closed-loop p99 at ${r.connections.closed} connections, sidecar / bare`, result: `${num(p99, 2)}×`, target: `≤ ${TARGETS.fairnessP99Ratio}×`, pass: judge(p99, (v) => v <= TARGETS.fairnessP99Ratio) });
  }
  const sidecarBursts = runsOf(r.burst, 'sidecar');
  if (sidecarBursts.length > 0) {
    const b = r.burstSchedule;
    const bursts = sidecarBursts.map((run) => segment(run, 'burst')!);
    const all = sidecarBursts.flatMap((run) => run.segments);
    const unanswered = all.reduce((n, s) => n + s.unfinished + s.otherStatus + (s.shed - s.shedWithRetryAfter), 0);
    const errors = all.reduce((n, s) => n + s.errorCount, 0);
    const resets = all.reduce((n, s) => n + Object.entries(s.errors).filter(([code]) => /RESET|SOCKET|EPIPE|CLOSED/i.test(code)).reduce((m, [, k]) => m + k, 0), 0);
    out.push({
      name: `3. every request answered (result or 503 with retry-after), ${num(b.rate, 0)} req/s for ${b.seconds} s and around it`,
      result: `${num(bursts.reduce((n, s) => n + s.ok, 0), 0)} ok, ${num(bursts.reduce((n, s) => n + s.shed, 0), 0)} × 503 in the burst; ${num(unanswered, 0)} without (other status, 503 without retry-after, unanswered), ${num(errors, 0)} connection errors`,
      target: '0 without, 0 errors',
      pass: unanswered === 0 && errors === 0,
    });
    out.push({ name: '3. resets (ECONNRESET, socket closed)', result: num(resets, 0), target: '0', pass: resets === 0 });
    const p99 = median(bursts.map((s) => s.latencyMs?.p99));
    out.push({ name: '3. p99 of all answers to the burst', result: `${num(p99, 0)} ms`, target: `≤ ${num(TARGETS.burstP99Ms, 0)} ms`, pass: judge(p99, (v) => v <= TARGETS.burstP99Ms) });
    // Goodput: 2xx answers that arrived while the burst lasted, per second (what the server
    // served under it); answers to the burst that come after it are the backlog, not goodput.
    const bareGood = median(runsOf(r.burst, 'bare').map((run) => segment(run, 'burst')?.servedPerSecond));
    const good = median(bursts.map((s) => s.servedPerSecond));
    const ratio = good === null || bareGood === null || bareGood <= 0 ? null : good / bareGood;
    out.push({
      name: '3. goodput under the burst (2xx answers arriving during it, per second), sidecar / bare',
      result: `${num(good, 0)} / ${num(bareGood, 0)} = ${num(ratio, 2)}×`,
      target: `≥ ${TARGETS.goodputRatio}×`,
      pass: judge(ratio, (v) => v >= TARGETS.goodputRatio),
    });
    const before = median(sidecarBursts.map((run) => segment(run, 'before')?.latencyMs?.p99));
    const after = median(sidecarBursts.map((run) => segment(run, 'recovered')?.latencyMs?.p99));
    out.push({
      name: `3. recovered: p99 at ${num(b.recoveryRate, 0)} req/s from ${b.graceS} s after the burst, against the p99 before it`,
      result: `${num(after)} ms (before: ${num(before)} ms)`,
      target: `≤ before + ${TARGETS.recoveryMarginMs} ms`,
      pass: before === null || after === null ? null : after <= before + TARGETS.recoveryMarginMs,
    });
  }
  return out;
}

/** The variants that ran, in the order bench/hot-path.ts starts them. */
function variantsIn(r: HotPathResults): Variant[] {
  const seen = new Set<Variant>([...r.latency, ...r.closed, ...r.burst].map((run) => run.variant));
  return (['bare', 'floor', 'sidecar'] as const).filter((variant) => seen.has(variant));
}

export interface FloorRow {
  readonly figure: string;
  readonly bare: number | null;
  readonly floor: number | null;
  readonly sidecar: number | null;
  readonly digits: number;
}

/**
 * The same figures for the three variants (medians over rounds): what the
 * design costs by itself (floor / bare) and what the sidecar's own code adds
 * to it (sidecar / floor). Empty when the floor did not run.
 */
export function floorRows(r: HotPathResults): FloorRow[] {
  const all = [...r.latency, ...r.closed, ...r.burst];
  if (!all.some((run) => run.variant === 'floor')) return [];
  const rows: FloorRow[] = [];
  const row = <T extends { variant: Variant }>(figure: string, runs: readonly T[], pick: (run: T) => number | null | undefined, digits = 1): void => {
    const of = (variant: Variant) => median(runsOf(runs, variant).map(pick));
    rows.push({ figure, bare: of('bare'), floor: of('floor'), sidecar: of('sidecar'), digits });
  };
  for (const rate of [...new Set(r.latency.map((run) => run.rate))]) {
    const at = r.latency.filter((run) => run.rate === rate);
    row(`server CPU µs per request at ${num(rate, 0)} req/s`, at, (run) => run.cpuUsPerRequest);
    row(`client p99 ms at ${num(rate, 0)} req/s`, at, (run) => run.measured.latencyMs?.p99);
  }
  if (r.closed.length > 0) {
    row(`closed loop 2xx/s (${r.connections.closed} connections)`, r.closed, (run) => run.okPerSecond, 0);
    row('closed loop p99 ms', r.closed, (run) => run.p99Ms, 0);
    row('closed loop peak RSS MiB', r.closed, (run) => (run.server.peakRssBytes === null ? null : run.server.peakRssBytes / 2 ** 20), 0);
  }
  if (r.burst.length > 0) {
    row('burst: p99 ms of all answers', r.burst, (run) => segment(run, 'burst')?.latencyMs?.p99, 0);
    row('burst: 2xx/s arriving during it', r.burst, (run) => segment(run, 'burst')?.servedPerSecond, 0);
  }
  return rows;
}

function ratioCell(a: number | null, b: number | null): string {
  return a === null || b === null || b <= 0 ? NA : `${num(a / b, 2)}×`;
}

/** What bent a run's figures on the generator's side (it sent late, or used most of a core); null when nothing did. */
export function generatorCaveat(label: string, lagP99: number | null | undefined, cpuPercent: number): string | null {
  const parts: string[] = [];
  if (lagP99 !== null && lagP99 !== undefined && lagP99 > 50) parts.push(`sent late (send lag p99 ${num(lagP99, 0)} ms, counted in its latency)`);
  if (cpuPercent >= 90) parts.push(`used ${num(cpuPercent, 0)}% of a core`);
  return parts.length > 0 ? `${label}: the generator ${parts.join(' and ')}` : null;
}

/** Runs whose figures the generator itself may have bent: it sent late, or used most of a core. */
export function generatorCaveats(r: HotPathResults): string[] {
  const out: string[] = [];
  const check = (label: string, lagP99: number | null | undefined, cpuPercent: number): void => {
    const caveat = generatorCaveat(label, lagP99, cpuPercent);
    if (caveat !== null) out.push(caveat);
  };
  for (const run of r.latency) check(`open loop ${num(run.rate, 0)}/s ${run.variant} round ${run.round + 1}`, run.measured.sendLagMs?.p99, run.generator.percent);
  for (const run of r.closed) check(`closed loop ${run.variant} round ${run.round + 1}`, null, run.generator.percent);
  for (const run of r.burst) check(`burst ${run.variant} round ${run.round + 1}`, segment(run, 'burst')?.sendLagMs?.p99, run.generator.percent);
  return out;
}

function verdictCell(pass: boolean | null): string {
  return pass === null ? NA : pass ? '**PASS**' : '**FAIL**';
}

function gcCell(run: OpenRunFigures): string {
  const kinds = Object.entries(run.server.gc).filter(([kind]) => kind !== 'all');
  if (kinds.length === 0) return 'none';
  return kinds.map(([kind, f]) => `${kind} ${f.count}× max ${num(f.maxMs, 1)} p99 ${num(f.p99Ms, 1)}`).join('; ');
}

export function renderHotPath(r: HotPathResults): string {
  const lines: string[] = [];
  const push = (...more: string[]): void => void lines.push(...more);
  const verdicts = hotPathVerdicts(r);
  push(
    '## Hot path (issue 10): sidecar against the bare route, client side, open loop',
    '',
    `${r.date} · ${r.cpus} CPUs, load average ${num(r.loadAverageAtStart, 2)} at start · ${r.rounds} round(s), ${variantsIn(r).join(', ')} alternated, each run a fresh process under \`node --trace-gc\`` +
      (r.quick ? ' · **BENCH_QUICK: a smoke test, not a measurement**' : ''),
    '',
    `Load from bench/generator.ts in its own process; latency from each request's intended send time. Added p99 subtracts the ` +
      `simulated downstream's own p99 (${r.downstreamHoldMs} ms nominal, no jitter), measured by the downstream itself over the ` +
      'measured window (GET /stats: from a batch\'s last request byte to its answer written, so its timer lateness and JSON work ' +
      'under load are not counted against the sidecar; the median over the sidecar runs at that rate, or the nominal hold where ' +
      'it could not be read), and the bare route\'s client p99 at the same rate. ' +
      `Sidecar env: ${Object.entries(r.sidecarEnv).map(([k, v]) => `${k}=${v}`).join(' ')}.`,
    '',
    '| verdict | result | target | |',
    '|---|---|---|---|',
    ...verdicts.map((v) => `| ${v.name} | ${v.result} | ${v.target} | ${verdictCell(v.pass)} |`),
    '',
  );
  const floor = floorRows(r);
  if (floor.length > 0) {
    push(
      '### The floor: what the design costs before the sidecar\'s own code',
      '',
      'bench/floor-server.ts is the least batching route the fixed design allows: Fastify, the same shards and window, one undici ' +
        'call per batch, each caller answered its result; no xstate, deadlines, admission, metrics or traces. ' +
        'floor / bare is the cost of holding every answer for the window and the downstream and of one call per batch; ' +
        'sidecar / floor is what the sidecar\'s own code adds to it.',
      '',
      '| figure | bare | floor | sidecar | floor / bare | sidecar / bare | sidecar / floor |',
      '|---|---|---|---|---|---|---|',
      ...floor.map(
        (f) =>
          `| ${f.figure} | ${num(f.bare, f.digits)} | ${num(f.floor, f.digits)} | ${num(f.sidecar, f.digits)} | ` +
          `${ratioCell(f.floor, f.bare)} | ${ratioCell(f.sidecar, f.bare)} | ${ratioCell(f.sidecar, f.floor)} |`,
      ),
      '',
    );
  }
  const caveats = generatorCaveats(r);
  if (caveats.length > 0) push('Read with care (the generator shares the CPUs with the server):', '', ...caveats.map((c) => `- ${c}`), '');
  if (r.latency.length > 0) {
    push(
      `### Open loop, ${r.connections.open} connections`,
      '',
      '| rate | variant | round | p50 / p99 / p99.9 ms | served | server CPU µs/req | GC pauses (ms) | event-loop delay p99 / max ms ² | sidecar_overhead p50 / p99 ms | generator CPU, send lag p99 |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...r.latency.map((run) => {
        const l = run.measured.latencyMs;
        const o = run.server.overhead;
        const e = run.server.eventLoop;
        const m = run.server.eventLoopMetrics;
        return (
          `| ${num(run.rate, 0)} | ${run.variant} | ${run.round + 1} | ${num(l?.p50)} / ${num(l?.p99)} / ${num(l?.p999)} | ` +
          `${num(run.measured.ok, 0)}/${num(run.measured.sent, 0)} | ${num(run.cpuUsPerRequest, 0)} | ${gcCell(run)} | ` +
          `${e === null ? NA : `${num(e.p99Ms)} / ${num(e.maxMs)}`}${m === null ? '' : ` (${num(m.p99Ms)})`} | ${o === null ? '—' : `${num(o.p50Ms)} / ${o.p99Overflow ? '>' : ''}${num(o.p99Ms)}`} | ` +
          `${num(run.generator.percent, 0)}%, ${num(run.measured.sendLagMs?.p99)} ms |`
        );
      }),
      '',
      '`sidecar_overhead_seconds` starts at Fastify\'s request start: it cannot see the time a request waits in the socket while ' +
        'the event loop is busy (a GC pause, a long batch), which the client-side figures include. ' +
        '² monitorEventLoopDelay at 10 ms resolution in both servers (bench/probe-preload.ts), less the 10 ms interval itself; ' +
        'for the sidecar, prom-client\'s nodejs_eventloop_lag_p99 over the window (same method) in brackets.',
      '',
    );
  }
  if (r.closed.length > 0) {
    push(
      `### Closed loop, autocannon, ${r.connections.closed} connections`,
      '',
      '| variant | round | req/s | p50 / p99 ms (closed loop) | server CPU µs/req | peak RSS MiB | GC max ms | event-loop delay p99 / max ms | generator CPU | errors / non-2xx |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...r.closed.map(
        (run) =>
          `| ${run.variant} | ${run.round + 1} | ${num(run.okPerSecond, 0)} | ${num(run.p50Ms, 0)} / ${num(run.p99Ms, 0)} | ${num(run.cpuUsPerRequest, 0)} | ` +
          `${num((run.server.peakRssBytes ?? Number.NaN) / 2 ** 20)} | ${num(run.server.gc.all?.maxMs)} | ${num(run.server.eventLoop?.p99Ms)} / ${num(run.server.eventLoop?.maxMs)} | ${num(run.generator.percent, 0)}% | ${run.errors} / ${run.non2xx} |`,
      ),
      '',
    );
  }
  if (r.burst.length > 0) {
    const b = r.burstSchedule;
    push(
      `### Burst: ${num(b.preRate, 0)} req/s for ${b.preS} s, ${num(b.rate, 0)} req/s for ${b.seconds} s, ${num(b.recoveryRate, 0)} req/s for ${b.graceS + b.recoveredS} s (${r.connections.burst} connections)`,
      '',
      '| variant | segment | sent | ok | 503 (with retry-after) | other status | errors | unanswered | p50 / p99 / max ms, all answers | 2xx/s arriving during it | send lag p99 ms |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...r.burst.flatMap((run) =>
        run.segments.map(
          (s) =>
            `| ${run.variant} | ${s.label} | ${num(s.sent, 0)} | ${num(s.ok, 0)} | ${num(s.shed, 0)} (${num(s.shedWithRetryAfter, 0)}) | ${num(s.otherStatus, 0)} | ` +
            `${Object.entries(s.errors).map(([c, n]) => `${n} ${c}`).join(', ') || '0'} | ${num(s.unfinished, 0)} | ` +
            `${num(s.latencyMs?.p50, 0)} / ${num(s.latencyMs?.p99, 0)} / ${num(s.latencyMs?.max, 0)} | ${num(s.servedPerSecond, 0)} | ${num(s.sendLagMs?.p99)} |`,
        ),
      ),
      '',
      'Per second of intended send time (p99 of all answers, ms; ok / 503 / errors):',
      '',
      `| s | ${r.burst.map((run) => `${run.variant} r${run.round + 1}`).join(' | ')} |`,
      `|---|${r.burst.map(() => '---').join('|')}|`,
      ...(r.burst[0]?.seconds ?? []).map(
        (sec, i) =>
          `| ${sec.second} ${sec.segment} | ${r.burst
            .map((run) => {
              const x = run.seconds[i];
              return x === undefined ? NA : `${num(x.p99, 0)} (${x.ok} / ${x.shed} / ${x.errors + x.unfinished})`;
            })
            .join(' | ')} |`,
      ),
      '',
      ...r.burst.map(
        (run) =>
          `${run.variant} r${run.round + 1} during the burst: GC ${Object.entries(run.server.gc).filter(([k]) => k !== 'all').map(([k, f]) => `${k} ${f.count}× max ${num(f.maxMs)} ms`).join('; ') || 'none'}` +
          (run.server.eventLoop === null ? '' : `; event loop p99 ${num(run.server.eventLoop.p99Ms)} ms, max ${num(run.server.eventLoop.maxMs)} ms`) +
          `; generator ${num(run.generator.percent, 0)}% CPU.`,
      ),
      '',
    );
  }
  if (r.problems.length > 0) push('Seen during the hot-path phases:', '', ...r.problems.map((p) => `- ${p}`), '');
  return lines.join('\n');
}
