/**
 * `npm run bench`: every question the bench answers, in one run on this
 * machine, as ratios where a ratio is the point (ADR 0011: the method; ADR
 * 0022: the kit). Each question has one phase, a file in bench/phases/ built
 * on bench/kit/ (one generator, one launcher, one way to read a process, one
 * report writer); PHASES below lists them, and docs/performance.md gives each
 * its question, its targets and the command that runs it alone. Retired
 * questions keep their last figures in ADR 0022.
 *
 * Output: each phase's bench/results/<phase>.json and .md; a run of every
 * phase also latest.json, summary.md (one table of every verdict, then each
 * phase's section) and chart.svg; the verdict table printed. BENCH_QUICK=1: a
 * smoke run of a few seconds a run, written to bench/results/quick/ (not a
 * measurement). BENCH_PHASE (a list; window, limited and hot-path are the old
 * names) runs some phases, BENCH_SKIP leaves some out, BENCH_RESULTS writes
 * elsewhere. Every process it starts is stopped before it exits.
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { renderChart } from './kit/chart.ts';
import { killAll } from './kit/launcher.ts';
import { num, summaryTable, writeResults, type Phase, type Verdict } from './kit/report.ts';
import { median } from './kit/stats.ts';
import { QUICK } from './kit/workload.ts';
import { addedLatency, floorRows, type AddedLatencyResults } from './phases/added-latency.ts';
import { burstsPhase } from './phases/bursts.ts';
import { cost } from './phases/cost.ts';
import { ingressThreads } from './phases/ingress-threads.ts';
import { limitedDownstream } from './phases/limited-downstream.ts';
import { windowMode } from './phases/window-mode.ts';

const PHASES: readonly Phase<never>[] = [addedLatency, cost, burstsPhase, limitedDownstream, ingressThreads, windowMode] as unknown as Phase<never>[];
const ALIASES: Record<string, string[]> = { window: ['window-mode'], limited: ['limited-downstream'], 'hot-path': ['added-latency', 'cost', 'bursts'] };
const RESULTS = process.env.BENCH_RESULTS ?? fileURLToPath(new URL(QUICK ? './results/quick/' : './results/', import.meta.url));

/** The phases BENCH_PHASE names (all when unset) less those BENCH_SKIP names; throws on a name it does not know. */
export function selectPhases(only = process.env.BENCH_PHASE ?? '', skip = process.env.BENCH_SKIP ?? ''): Phase<never>[] {
  const names = (list: string): string[] => list.split(',').map((s) => s.trim()).filter((s) => s !== '').flatMap((s) => ALIASES[s] ?? [s]);
  for (const name of [...names(only), ...names(skip)]) if (!PHASES.some((p) => p.name === name)) throw new Error(`unknown phase "${name}"; phases: ${PHASES.map((p) => p.name).join(', ')}`);
  const chosen = only === '' ? PHASES : PHASES.filter((p) => names(only).includes(p.name));
  return chosen.filter((p) => !names(skip).includes(p.name));
}

/** Client p99 against offered rate for each variant, and the sidecar's downstream calls per 1,000 requests. */
function chart(r: AddedLatencyResults, commit: string | null): string {
  const rates = [...new Set(r.runs.map((run) => run.rate))];
  const line = (variant: string, color: string) => ({ name: `${variant}: client p99 (ms)`, color, points: rates.map((x) => ({ x, y: median(r.runs.filter((run) => run.variant === variant && run.rate === x).map((run) => run.segments[0]!.latencyMs?.p99)) })) });
  const calls = floorRows(r).filter((row) => row.figure.startsWith('downstream calls'));
  return renderChart({
    title: `Batching sidecar on this machine${r.quick ? ' (BENCH_QUICK smoke run)' : ''}`,
    subtitle: 'open loop, latency from the intended send time; the downstream holds 50 ms',
    lines: { title: 'Client p99 against offered rate (ms, log scale)', series: [line('bare', '#555'), line('floor', '#1f77b4'), line('sidecar', '#d62728')], target: { y: 50 + 15, label: 'downstream + 15 ms' } },
    bars: { title: 'Downstream calls per 1,000 requests', bars: calls.map((row, i) => ({ label: `${num(rates[i]! / 1000, 0)}k/s`, value: row.sidecar, note: row.sidecar === null ? '' : `${num(1000 / row.sidecar, 0)} per batch` })) },
    footer: `${r.date.slice(0, 19).replace('T', ' ')} UTC · commit ${commit ?? 'n/a'} · ${cpus().length} CPUs · every process on one machine · bench/results/summary.md has every figure`,
  });
}

function commit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  const phases = selectPhases();
  const started = performance.now();
  const meta = { date: new Date().toISOString(), commit: commit(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', loadAverageAtStart: loadavg()[0]!, quick: QUICK, wallSeconds: 0 };
  log(`batching-sidecar bench: ${phases.map((p) => p.name).join(', ')}; ${meta.cpus} CPUs, load average ${num(meta.loadAverageAtStart, 2)}${QUICK ? ' (BENCH_QUICK: a smoke run, not a measurement)' : ''}`);
  const results: Record<string, unknown> = {};
  const rows: { phase: string; verdict: Verdict }[] = [];
  const sections: string[] = [];
  for (const [i, phase] of phases.entries()) {
    log(`[${i + 1}/${phases.length}] ${phase.name}: ${phase.question}`);
    const r = await phase.run(log);
    results[phase.name] = r;
    rows.push(...phase.verdicts(r).map((verdict) => ({ phase: phase.name, verdict })));
    sections.push(phase.render(r));
    writeResults(RESULTS, { [`${phase.name}.json`]: `${JSON.stringify({ meta, results: r }, null, 2)}\n`, [`${phase.name}.md`]: `${sections.at(-1)!}\n` });
  }
  meta.wallSeconds = (performance.now() - started) / 1000;
  const head = [`# Benchmark summary`, '', `${meta.date} · commit ${meta.commit ?? 'n/a'} · Node ${meta.node} · ${meta.cpus} × ${meta.cpuModel} · load average ${num(meta.loadAverageAtStart, 2)} at start · ${num(meta.wallSeconds, 0)} s`, '', ...summaryTable(rows), ''];
  if (phases.length === PHASES.length) {
    const added = results['added-latency'] as AddedLatencyResults;
    writeResults(RESULTS, { 'latest.json': `${JSON.stringify({ meta, verdicts: rows, results }, null, 2)}\n`, 'summary.md': [...head, '![chart](chart.svg)', '', ...sections].join('\n'), 'chart.svg': chart(added, meta.commit) });
  }
  log(['', ...head, `written to ${RESULTS}: ${phases.map((p) => `${p.name}.json/.md`).join(', ')}${phases.length === PHASES.length ? ', latest.json, summary.md, chart.svg' : ''}`].join('\n'));
}

if (import.meta.main) {
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => (killAll(), process.exit(130)));
  try {
    await main();
    process.exit(0);
  } catch (error) {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAll();
    process.exit(1);
  }
}
