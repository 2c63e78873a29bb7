/**
 * Before and after for one change: the sidecar at a git ref (the baseline, in
 * a temporary worktree) against the working tree (the candidate), in one run,
 * at one fixed open-loop rate, alternated round by round so drift in the
 * machine's load hits both. Reports the sidecar's CPU per request, its
 * sidecar_overhead_seconds and the client p99, and the candidate/baseline
 * ratios that commit messages quote (ADR 0011).
 *
 *   npx node bench/compare.ts <git-ref> [rate=3000] [rounds=3] [seconds=6]
 *
 * TRACING=1 runs both with tracing on (batch spans, 1% of request spans, to a
 * local OTLP sink); TRACING=ab compares the working tree with itself, tracing
 * off (baseline) against on (candidate), the ref ignored. BASELINE_ENV="NAME=value ..."
 * adds variables to the baseline only: `BASELINE_ENV=SERVER_TIMING=false
 * npx node bench/compare.ts HEAD` is the cost of Server-Timing, same code on both sides.
 */
import { MAIN } from '../sim/sidecar-process.ts';
import { runGenerator } from './kit/generator.ts';
import { killAll, startDownstream, startServer, worktreeAt, type Downstream } from './kit/launcher.ts';
import { startOtlpSink } from '../sim/otlp-sink.ts';
import { median } from './kit/stats.ts';
import { DOWNSTREAM_HOLD_MS, makeBodies, OPEN_CONNECTIONS } from './kit/workload.ts';
import { Window } from './kit/window.ts';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write('usage: npx node bench/compare.ts <git-ref> [rate=3000] [rounds=3] [seconds=6]   (TRACING=1|ab, BASELINE_ENV="NAME=value ...")\n');
  process.exit(0);
}
const [ref = 'HEAD', rate = 3000, rounds = 3, seconds = 6] = [args[0], ...args.slice(1).map(Number)] as [string | undefined, number?, number?, number?];
const TRACING_AB = process.env.TRACING === 'ab';
const bodies = makeBodies(64);

type Figures = Record<'cpuUsPerRequest' | 'overheadP50' | 'overheadP99' | 'clientP99', number | null>;

async function measure(main: string, downstream: Downstream, env: Record<string, string>): Promise<Figures> {
  const sidecar = await startServer('sidecar', { DOWNSTREAM_URL: downstream.url, ...env }, { main });
  try {
    const window = new Window(sidecar, true);
    const segments = [{ label: 'warmup', rate, seconds: 2 }, { label: 'measure', rate, seconds }];
    const onEvent = (e: { event: string; index?: number }): void => void (e.event === 'segment' && e.index === 1 ? window.open() : e.event === 'sent' ? window.close() : null);
    const result = await runGenerator({ mode: 'open', origin: sidecar.url, connections: OPEN_CONNECTIONS, segments, bodies, drainS: 5 }, onEvent);
    const server = await window.figures();
    const m = result.segments[1]!;
    if (m.ok < m.sent) process.stdout.write(`  ${m.sent - m.ok} of ${m.sent} requests not answered 2xx\n`);
    return { cpuUsPerRequest: server.cpuSeconds === null ? null : (server.cpuSeconds * 1e6) / m.sent, overheadP50: server.overhead?.p50Ms ?? null, overheadP99: server.overhead?.p99Ms ?? null, clientP99: m.latencyMs?.p99 ?? null };
  } finally {
    await sidecar.stop();
  }
}

const worktree = TRACING_AB ? null : worktreeAt(ref);
const downstream = await startDownstream({ latencyMs: DOWNSTREAM_HOLD_MS });
const sink = process.env.TRACING === '1' || TRACING_AB ? await startOtlpSink() : null;
const tracing: Record<string, string> =
  sink === null ? {} : { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' };
const baselineEnv = Object.fromEntries((process.env.BASELINE_ENV ?? '').split(/\s+/).filter((pair) => pair.includes('=')).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
const variants = {
  baseline: { main: worktree?.main ?? MAIN, env: { ...(TRACING_AB ? {} : tracing), ...baselineEnv } },
  candidate: { main: MAIN, env: tracing },
};
const runs: Record<keyof typeof variants, Figures[]> = { baseline: [], candidate: [] };
const f = (n: number | null, d = 2): string => (n === null ? 'n/a' : n.toFixed(d));
try {
  for (let round = 0; round < rounds; round++) {
    for (const name of round % 2 === 0 ? (['baseline', 'candidate'] as const) : (['candidate', 'baseline'] as const)) {
      const x = await measure(variants[name].main, downstream, variants[name].env);
      runs[name].push(x);
      process.stdout.write(`round ${round + 1} ${name.padEnd(9)} cpu ${f(x.cpuUsPerRequest, 1)} µs/req, overhead p50 ${f(x.overheadP50)} p99 ${f(x.overheadP99)} ms, client p99 ${f(x.clientP99, 1)} ms\n`);
    }
  }
} finally {
  await downstream.stop();
  await sink?.close();
  killAll();
  worktree?.remove();
}
process.stdout.write(`\n${TRACING_AB ? 'tracing off vs on' : `${ref} vs working tree`} at ${rate} req/s open loop, ${rounds} rounds of ${seconds} s, medians:\n`);
for (const key of ['cpuUsPerRequest', 'overheadP50', 'overheadP99', 'clientP99'] as const) {
  const [before, after] = [median(runs.baseline.map((x) => x[key])), median(runs.candidate.map((x) => x[key]))];
  process.stdout.write(`  ${key}: baseline ${f(before)}, candidate ${f(after)}, candidate/baseline ${before === null || after === null ? 'n/a' : (after / before).toFixed(2)}\n`);
}
process.exit(0);
