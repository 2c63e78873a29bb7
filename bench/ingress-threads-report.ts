/**
 * Verdicts and the markdown summary of bench/ingress-threads.ts. Rounds are
 * combined by their median (as in bench/hot-path-report.ts); the verdicts are
 * ratios of the 2-thread sidecar to the 1-thread one measured in the same run,
 * apart from the 15 ms added p99, which subtracts the bare route's p99 from
 * the same run.
 */
import { generatorCaveat, median, type Verdict } from './hot-path-report.ts';
import type { ClosedThreadsRun, IngressThreadsResults, OpenThreadsRun } from './ingress-threads.ts';
import type { GcFigures } from './gc-trace.ts';

export const TARGETS = {
  /** Closed-loop 2xx/s, 2 threads / 1 thread. */
  throughputRatio: 1.25,
  /** Mean batch size at the fixed rate, 2 threads / 1 thread: batching stays global. */
  batchSizeRatio: { min: 0.9, max: 1.1 },
  addedP99Ms: 15,
} as const;

const NA = 'n/a';

function num(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || !Number.isFinite(n) ? NA : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || b <= 0 ? null : a / b;
}

export interface ClosedSide {
  readonly threads: number;
  readonly okPerSecond: number | null;
  readonly non2xx: number;
  readonly errors: number;
  readonly cpuUsPerRequest: number | null;
  readonly peakRssBytes: number | null;
  readonly p99Ms: number | null;
}

export interface OpenSide {
  readonly threads: number;
  readonly meanBatchSize: number | null;
  readonly p99: number | null;
  /** What was subtracted for the downstream: the median of its measured p99 over this mode's runs, else the nominal hold. */
  readonly downstreamP99: number;
  readonly downstreamMeasured: boolean;
  readonly addedP99: number | null;
  readonly cpuUsPerRequest: number | null;
}

export interface IngressThreadsSummary {
  readonly closed: { readonly sides: ClosedSide[]; readonly throughputRatio: number | null; readonly cpuRatio: number | null; readonly rssRatio: number | null } | null;
  readonly open: { readonly sides: OpenSide[]; readonly bareP99: number | null; readonly batchSizeRatio: number | null; readonly cpuRatio: number | null } | null;
}

/** Medians by mode, and the ratios of the last mode (2 threads) to the first (1 thread). */
export function summarise(r: IngressThreadsResults): IngressThreadsSummary {
  const [first, last] = [r.threadCounts[0]!, r.threadCounts[r.threadCounts.length - 1]!];
  let closed: IngressThreadsSummary['closed'] = null;
  if (r.closed.length > 0) {
    const sides = r.threadCounts.map((threads): ClosedSide => {
      const runs = r.closed.filter((run) => run.threads === threads);
      return {
        threads,
        okPerSecond: median(runs.map((run) => run.okPerSecond)),
        non2xx: runs.reduce((n, run) => n + run.non2xx, 0),
        errors: runs.reduce((n, run) => n + run.errors, 0),
        cpuUsPerRequest: median(runs.map((run) => run.cpuUsPerRequest)),
        peakRssBytes: median(runs.map((run) => run.server.peakRssBytes)),
        p99Ms: median(runs.map((run) => run.p99Ms)),
      };
    });
    const a = sides.find((s) => s.threads === first)!;
    const b = sides.find((s) => s.threads === last)!;
    closed = { sides, throughputRatio: ratio(b.okPerSecond, a.okPerSecond), cpuRatio: ratio(b.cpuUsPerRequest, a.cpuUsPerRequest), rssRatio: ratio(b.peakRssBytes, a.peakRssBytes) };
  }
  let open: IngressThreadsSummary['open'] = null;
  if (r.open.length > 0) {
    const bareP99 = median(r.open.filter((run) => run.threads === null).map((run) => run.measured.latencyMs?.p99));
    const sides = r.threadCounts.map((threads): OpenSide => {
      const runs = r.open.filter((run) => run.threads === threads);
      const p99 = median(runs.map((run) => run.measured.latencyMs?.p99));
      const measured = median(runs.map((run) => run.downstreamP99Ms));
      const downstreamP99 = measured ?? r.downstreamHoldMs;
      return {
        threads,
        meanBatchSize: median(runs.map((run) => run.server.meanBatchSize)),
        p99,
        downstreamP99,
        downstreamMeasured: measured !== null,
        addedP99: p99 === null || bareP99 === null ? null : p99 - downstreamP99 - bareP99,
        cpuUsPerRequest: median(runs.map((run) => run.cpuUsPerRequest)),
      };
    });
    const a = sides.find((s) => s.threads === first)!;
    const b = sides.find((s) => s.threads === last)!;
    open = { sides, bareP99, batchSizeRatio: ratio(b.meanBatchSize, a.meanBatchSize), cpuRatio: ratio(b.cpuUsPerRequest, a.cpuUsPerRequest) };
  }
  return { closed, open };
}

export interface RoundFigures {
  readonly round: number;
  /** Closed-loop 2xx/s, last mode / first mode, this round's runs. */
  readonly throughputRatio: number | null;
  /** Mean batch size, last mode / first mode, this round's runs. */
  readonly batchSizeRatio: number | null;
  readonly bareP99: number | null;
  /** Added p99 of each mode against this round's bare run and its own downstream p99. */
  readonly addedP99: readonly { readonly threads: number; readonly ms: number | null }[];
}

/**
 * The same figures round by round (each mode against the other's run and the
 * bare run of the same round): how far apart they are says how much the
 * machine moved under the run, which a median of two rounds hides.
 */
export function byRound(r: IngressThreadsResults): RoundFigures[] {
  const [first, last] = [r.threadCounts[0]!, r.threadCounts[r.threadCounts.length - 1]!];
  const rounds = [...new Set([...r.closed, ...r.open].map((run) => run.round))].sort((a, b) => a - b);
  return rounds.map((round) => {
    const closedOf = (threads: number) => r.closed.find((run) => run.round === round && run.threads === threads);
    const openOf = (threads: number | null) => r.open.find((run) => run.round === round && run.threads === threads);
    const bareP99 = openOf(null)?.measured.latencyMs?.p99 ?? null;
    return {
      round,
      throughputRatio: ratio(closedOf(last)?.okPerSecond ?? null, closedOf(first)?.okPerSecond ?? null),
      batchSizeRatio: ratio(openOf(last)?.server.meanBatchSize ?? null, openOf(first)?.server.meanBatchSize ?? null),
      bareP99,
      addedP99: r.threadCounts.map((threads) => {
        const run = openOf(threads);
        const p99 = run?.measured.latencyMs?.p99 ?? null;
        return { threads, ms: run === undefined || p99 === null || bareP99 === null ? null : p99 - (run.downstreamP99Ms ?? r.downstreamHoldMs) - bareP99 };
      }),
    };
  });
}

function judge(value: number | null, ok: (v: number) => boolean): boolean | null {
  return value === null ? null : ok(value);
}

export function ingressThreadsVerdicts(r: IngressThreadsResults): Verdict[] {
  const s = summarise(r);
  const [first, last] = [r.threadCounts[0]!, r.threadCounts[r.threadCounts.length - 1]!];
  const out: Verdict[] = [];
  if (s.closed !== null) {
    const a = s.closed.sides.find((x) => x.threads === first)!;
    const b = s.closed.sides.find((x) => x.threads === last)!;
    out.push({
      name: `closed-loop 2xx answers per second (${r.connections.closed} connections), ${last} threads / ${first}`,
      result: `${num(b.okPerSecond, 0)} / ${num(a.okPerSecond, 0)} = ${num(s.closed.throughputRatio, 2)}×`,
      target: `≥ ${TARGETS.throughputRatio}×`,
      pass: judge(s.closed.throughputRatio, (v) => v >= TARGETS.throughputRatio),
    });
  }
  if (s.open !== null) {
    const a = s.open.sides.find((x) => x.threads === first)!;
    const b = s.open.sides.find((x) => x.threads === last)!;
    out.push({
      name: `mean batch size at ${num(r.rate, 0)} req/s (sidecar_batch_size sum / count over the window), ${last} threads / ${first}`,
      result: `${num(b.meanBatchSize, 2)} / ${num(a.meanBatchSize, 2)} = ${num(s.open.batchSizeRatio, 3)}×`,
      target: `${TARGETS.batchSizeRatio.min}–${TARGETS.batchSizeRatio.max}×`,
      pass: judge(s.open.batchSizeRatio, (v) => v >= TARGETS.batchSizeRatio.min && v <= TARGETS.batchSizeRatio.max),
    });
    for (const side of s.open.sides) {
      out.push({
        name: `added p99 at ${num(r.rate, 0)} req/s, ${side.threads} thread${side.threads === 1 ? '' : 's'} (client p99 − ${side.downstreamMeasured ? 'downstream p99 (measured)' : `downstream hold (nominal ${r.downstreamHoldMs} ms)`} − bare p99)`,
        result: `${num(side.p99)} − ${num(side.downstreamP99)} − ${num(s.open.bareP99)} = ${num(side.addedP99)} ms`,
        target: `≤ ${TARGETS.addedP99Ms} ms`,
        pass: judge(side.addedP99, (v) => v <= TARGETS.addedP99Ms),
      });
    }
  }
  return out;
}

/** Runs whose figures the generator itself may have bent: it sent late, or used most of a core. */
export function generatorCaveats(r: IngressThreadsResults): string[] {
  const out: string[] = [];
  const check = (label: string, lagP99: number | null | undefined, cpuPercent: number): void => {
    const caveat = generatorCaveat(label, lagP99, cpuPercent);
    if (caveat !== null) out.push(caveat);
  };
  for (const run of r.closed) check(`closed loop, ${label(run.threads)}, round ${run.round + 1}`, null, run.generator.percent);
  for (const run of r.open) check(`open loop, ${label(run.threads)}, round ${run.round + 1}`, run.measured.sendLagMs?.p99, run.generator.percent);
  return out;
}

function label(threads: number | null): string {
  return threads === null ? 'bare' : `${threads} thread${threads === 1 ? '' : 's'}`;
}

function verdictCell(pass: boolean | null): string {
  return pass === null ? NA : pass ? '**PASS**' : '**FAIL**';
}

/** CPU by thread as % of one core over the window: main / each worker / the rest. */
function threadCpuCell(run: OpenThreadsRun | ClosedThreadsRun): string {
  const t = run.server.threadCpu;
  const w = run.generator.windowSeconds;
  if (t === null || w <= 0) return NA;
  const pct = (s: number): string => `${num((100 * s) / w, 0)}`;
  return `${pct(t.main)} / ${t.workers.length === 0 ? '—' : t.workers.map(pct).join(' + ')} / ${pct(t.other)}`;
}

/**
 * The whole machine's busy CPU over the window, and what of it was neither the
 * server nor the generator (the downstream, the bench, anyone else), as % of
 * one core; null for results written before the machine was sampled.
 */
export function othersPercent(run: OpenThreadsRun | ClosedThreadsRun): { busy: number; others: number } | null {
  const busy = run.server.machineBusyCores;
  const w = run.generator.windowSeconds;
  if (busy === null || busy === undefined || run.server.cpuSeconds === null || w <= 0) return null;
  const server = (100 * run.server.cpuSeconds) / w;
  return { busy: 100 * busy, others: 100 * busy - server - run.generator.percent };
}

function machineCell(run: OpenThreadsRun | ClosedThreadsRun): string {
  const m = othersPercent(run);
  return m === null ? NA : `${num(m.busy, 0)}% / ${num(m.others, 0)}%`;
}

function gcMax(gc: GcFigures): string {
  return gc.all === undefined ? '—' : `${num(gc.all.maxMs)} (${gc.all.count}×)`;
}

/** GC pause max (count), the main isolate's, then the ingress threads' isolates' together. */
function gcCell(run: OpenThreadsRun | ClosedThreadsRun): string {
  const g = run.server.gcByIsolate;
  return `${gcMax(g.main)} / ${Object.keys(g.workers).length === 0 ? '—' : gcMax(g.workers)}`;
}

/** GC pauses by kind, count and max ms, the main isolate's, then the ingress threads' isolates' together. */
function gcKindsCell(run: OpenThreadsRun | ClosedThreadsRun): string {
  const kinds = (gc: GcFigures): string => {
    const entries = Object.entries(gc).filter(([kind]) => kind !== 'all');
    return entries.length === 0 ? 'none' : entries.map(([kind, f]) => `${kind} ${f.count}× max ${num(f.maxMs)}`).join(', ');
  };
  const g = run.server.gcByIsolate;
  return run.threads === null || run.threads === 1 ? kinds(g.main) : `main: ${kinds(g.main)}; ingress: ${kinds(g.workers)}`;
}

/** Event-loop delay p99 / max: the main thread's, then each worker thread's in brackets. */
function loopCell(run: OpenThreadsRun | ClosedThreadsRun): string {
  const e = run.server.eventLoop;
  const main = e === null ? NA : `${num(e.p99Ms)} / ${num(e.maxMs)}`;
  const workers = run.server.workerEventLoops;
  return workers.length === 0 ? main : `${main} [${workers.map((w) => `${num(w.p99Ms)} / ${num(w.maxMs)}`).join('; ')}]`;
}

function outcomesCell(outcomes: Record<string, number> | null): string {
  if (outcomes === null) return NA;
  const parts = Object.entries(outcomes).filter(([, n]) => n > 0);
  return parts.length === 0 ? '—' : parts.map(([o, n]) => `${o} ${num(n, 0)}`).join(', ');
}

export function renderIngressThreads(r: IngressThreadsResults): string {
  const lines: string[] = [];
  const push = (...more: string[]): void => void lines.push(...more);
  const verdicts = ingressThreadsVerdicts(r);
  const s = summarise(r);
  // Results written before the machine's CPU was sampled have no such column.
  const machine = [...r.closed, ...r.open].some((run) => run.server.machineBusyCores !== null && run.server.machineBusyCores !== undefined);
  push(
    `## Ingress threads: INGRESS_THREADS=${r.threadCounts.join(' against ')}`,
    '',
    `${r.date} · ${r.cpus} CPUs, load average ${num(r.loadAverageAtStart, 2)} at start, ${num(r.loadAverageAtEnd, 2)} at the end · ` +
      `${r.rounds} round(s), modes alternated (A B, B A), each run a fresh process under \`node --trace-gc\` · ${num(r.wallSeconds, 0)} s` +
      (r.quick ? ' · **BENCH_QUICK: a smoke test, not a measurement**' : ''),
    '',
    'The method and the runs of the hot-path phase (bench/hot-path.ts): load from bench/generator.ts in its own process, ' +
      'sharing the CPUs with the sidecar (which, with 2 ingress threads, has 3 busy threads: the batcher and two HTTP threads); ' +
      `latency from each request's intended send time; added p99 subtracts the simulated downstream's own p99 (GET /stats over the window) ` +
      `and the bare route's client p99 at the same rate, from the same run. Sidecar env: ${Object.entries(r.sidecarEnv).map(([k, v]) => `${k}=${v}`).join(' ')}, INGRESS_THREADS as in each row.`,
    '',
    '| verdict | result | target | |',
    '|---|---|---|---|',
    ...verdicts.map((v) => `| ${v.name} | ${v.result} | ${v.target} | ${verdictCell(v.pass)} |`),
    '',
  );
  const besides: string[] = [];
  if (s.closed !== null) {
    besides.push(
      `closed loop, ${r.threadCounts.at(-1)} threads / ${r.threadCounts[0]}: server CPU per 2xx ${num(s.closed.cpuRatio, 2)}×, peak RSS ${num(s.closed.rssRatio, 2)}×; ` +
        `non-2xx ${s.closed.sides.map((x) => `${num(x.non2xx, 0)} (${label(x.threads)})`).join(', ')}, connection errors ${s.closed.sides.map((x) => `${num(x.errors, 0)}`).join(' / ')}`,
    );
  }
  if (s.open !== null) besides.push(`open loop at ${num(r.rate, 0)} req/s, ${r.threadCounts.at(-1)} threads / ${r.threadCounts[0]}: server CPU per request ${num(s.open.cpuRatio, 2)}×`);
  if (besides.length > 0) push('Beside the verdicts (medians of the rounds):', '', ...besides.map((b) => `- ${b}`), '');
  const rounds = byRound(r);
  if (rounds.length > 1) {
    push(
      'Round by round (each mode against the other mode and the bare route of the same round; the spread is the machine moving under the run):',
      '',
      ...rounds.map(
        (x) =>
          `- round ${x.round + 1}: closed-loop 2xx/s ratio ${num(x.throughputRatio, 2)}×, mean batch size ratio ${num(x.batchSizeRatio, 3)}×, ` +
          `bare p99 ${num(x.bareP99)} ms, added p99 ${x.addedP99.map((a) => `${num(a.ms)} ms (${label(a.threads)})`).join(', ')}`,
      ),
      '',
    );
  }
  const caveats = generatorCaveats(r);
  const bareRounds = r.open.filter((run) => run.threads === null).map((run) => run.measured.latencyMs?.p99 ?? null);
  if (s.open !== null && s.open.sides.some((side) => side.addedP99 !== null && side.addedP99 < 0)) {
    caveats.push(
      `an added p99 below zero: the bare route's p99 (${bareRounds.map((p) => num(p)).join(', ')} ms by round) was pushed up by something else in a round, ` +
        'so its median flatters the sidecar; the round-by-round line pairs each run with its own round',
    );
  }
  if (caveats.length > 0) push('Read with care:', '', ...caveats.map((c) => `- ${c}`), '');
  if (r.closed.length > 0) {
    push(
      `### Closed loop, autocannon, ${r.connections.closed} connections, ${r.durationsSeconds.closed} s a run`,
      '',
      `| mode | round | load avg | 2xx/s | non-2xx by status | errors | sidecar outcomes ¹ | p50 / p99 ms (closed loop) | server CPU µs/2xx | CPU % of a core: main / ingress threads / other | peak RSS MiB | GC max ms: main / ingress isolates | event-loop delay p99 / max ms: main [ingress threads] | generator CPU |${machine ? ' machine busy / others ² |' : ''}`,
      `|---|---|---|---|---|---|---|---|---|---|---|---|---|---|${machine ? '---|' : ''}`,
      ...r.closed.map((run) => {
        const statuses = Object.entries(run.statusCodes ?? {}).filter(([c]) => !c.startsWith('2'));
        return (
          `| ${label(run.threads)} | ${run.round + 1} | ${num(run.loadAverage, 2)} | ${num(run.okPerSecond, 0)} | ` +
          `${statuses.length === 0 ? (run.non2xx > 0 ? num(run.non2xx, 0) : '0') : statuses.map(([c, n]) => `${num(n, 0)} × ${c}`).join(', ')} | ${run.errors} | ` +
          `${outcomesCell(run.server.outcomes)} | ${num(run.p50Ms, 0)} / ${num(run.p99Ms, 0)} | ${num(run.cpuUsPerRequest, 0)} | ${threadCpuCell(run)} | ` +
          `${num((run.server.peakRssBytes ?? Number.NaN) / 2 ** 20, 0)} | ${gcCell(run)} | ${loopCell(run)} | ${num(run.generator.percent, 0)}% |${machine ? ` ${machineCell(run)} |` : ''}`
        );
      }),
      '',
      '¹ sidecar_requests_total by outcome between the scrapes at the start and the end of the window; in a saturated closed loop ' +
        'a scrape queues behind the load, so the counts cover only part of the window: read them for the kind of refusal, not the number.',
      '',
    );
  }
  if (r.open.length > 0) {
    push(
      `### Open loop at ${num(r.rate, 0)} req/s, ${r.connections.open} connections, ${r.durationsSeconds.latency} s a run`,
      '',
      `| mode | round | load avg | p50 / p99 / p99.9 ms | served | downstream p99 ms | mean batch | server CPU µs/req | CPU % of a core: main / ingress threads / other | GC pauses (ms) | event-loop delay p99 / max ms: main [ingress threads] | sidecar_overhead p50 / p99 ms | generator CPU, send lag p99 |${machine ? ' machine busy / others ² |' : ''}`,
      `|---|---|---|---|---|---|---|---|---|---|---|---|---|${machine ? '---|' : ''}`,
      ...r.open.map((run) => {
        const l = run.measured.latencyMs;
        const o = run.server.overhead;
        return (
          `| ${label(run.threads)} | ${run.round + 1} | ${num(run.loadAverage, 2)} | ${num(l?.p50)} / ${num(l?.p99)} / ${num(l?.p999)} | ` +
          `${num(run.measured.ok, 0)}/${num(run.measured.sent, 0)} | ${run.threads === null ? '—' : num(run.downstreamP99Ms)} | ${run.threads === null ? '—' : num(run.server.meanBatchSize, 2)} | ` +
          `${num(run.cpuUsPerRequest, 0)} | ${threadCpuCell(run)} | ${gcKindsCell(run)} | ${loopCell(run)} | ` +
          `${o === null ? '—' : `${num(o.p50Ms)} / ${o.p99Overflow ? '>' : ''}${num(o.p99Ms)}`} | ${num(run.generator.percent, 0)}%, ${num(run.measured.sendLagMs?.p99)} ms |${machine ? ` ${machineCell(run)} |` : ''}`
        );
      }),
      '',
    );
  }
  push(
    'CPU by thread from /proc/<pid>/task (MainThread: with 1 thread, HTTP and batching; with 2, batching only; the ingress threads are ' +
      "worker_threads Workers; other: V8's GC and compiler helpers, libuv's pool), as % of one core over the generator's window. " +
      'GC pauses from `--trace-gc`, by isolate: each pause stops only its own thread (the first isolate in the trace is taken as the main thread\'s). ' +
      'Event-loop delay: monitorEventLoopDelay at 10 ms in every thread (bench/probe-preload.ts), less the 10 ms interval. ' +
      '`sidecar_overhead_seconds` is measured on the thread that took the request, from Fastify\'s request start.' +
      (machine
        ? ` ² The machine's busy CPU over the window (/proc/stat; ${r.cpus} CPUs = ${r.cpus * 100}%), and what of it was neither the sidecar nor the generator: ` +
          'the downstream, the bench process, and whatever else runs on the machine (±5 %: /proc counts in 10 ms ticks); a run where others took much more than their usual share was squeezed.'
        : ''),
    '',
  );
  if (r.problems.length > 0) push('Seen during the ingress-threads phases:', '', ...r.problems.map((p) => `- ${p}`), '');
  return lines.join('\n');
}
