/**
 * Before/after for one change: the sidecar at a git ref (the baseline) against
 * the working tree (the candidate), in one run, on the same machine, at the
 * same fixed open-loop rate. Variants alternate round by round so drift in the
 * machine's load hits both. Reports the sidecar's CPU per request (what bounds
 * its throughput on a saturated core), sidecar_overhead_seconds and end-to-end
 * latency, and the candidate/baseline ratios quoted in commit messages.
 *
 *   node bench/compare.ts <git-ref> [rate=3000] [rounds=3] [seconds=6]
 *
 * TRACING=1 runs both with tracing on (batch spans, 1% of request spans,
 * exported to a local OTLP sink). TRACING=ab compares the working tree with
 * itself, tracing off (baseline) against tracing on (candidate); the ref is
 * then ignored. BASELINE_ENV="NAME=value ..." adds variables to the baseline
 * only: `BASELINE_ENV=SERVER_TIMING=false node bench/compare.ts HEAD` is the
 * cost of Server-Timing, same code on both sides.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSidecar } from '../sim/sidecar-process.ts';
import { killAll, startDownstream } from './children.ts';
import { histogram, histogramDelta, quantile, scrape } from './metrics.ts';
import { OpenLoop } from './open-loop.ts';
import { startOtlpSink } from './otlp-sink.ts';
import { cpuBetween, sampleProcess } from './proc.ts';

const [ref = 'HEAD', rateArg = '3000', roundsArg = '3', secondsArg = '6'] = process.argv.slice(2);
const RATE = Number(rateArg);
const ROUNDS = Number(roundsArg);
const SECONDS = Number(secondsArg);
const ROOT = new URL('..', import.meta.url).pathname;

interface Figures {
  cpuUsPerRequest: number;
  overheadP50: number;
  overheadP99: number;
  e2eP99: number;
  ok: number;
  failed: number;
}

const bodies = Array.from({ length: 64 }, (_, i) => Buffer.from(JSON.stringify({ key: `user-${i}`, id: i, payload: 'x'.repeat(40) })));

async function measure(main: string, downstreamUrl: string, extraEnv: Record<string, string>): Promise<Figures> {
  const sidecar = await startSidecar({ DOWNSTREAM_URL: downstreamUrl, ...extraEnv }, ['node', main]);
  try {
    const origin = sidecar.url;
    let p0 = sampleProcess(sidecar.child.pid);
    let before = scrape(origin);
    const loop = new OpenLoop({
      origin,
      path: '/process',
      rate: RATE,
      warmupMs: 2000,
      durationMs: SECONDS * 1000,
      bodies,
      connections: 2000,
      drainTimeoutMs: 5000,
      onMeasureStart: () => {
        p0 = sampleProcess(sidecar.child.pid);
        before = scrape(origin);
      },
    });
    await loop.start();
    const p1 = sampleProcess(sidecar.child.pid);
    const result = await loop.finish();
    const overhead = histogramDelta(histogram(await before, 'sidecar_overhead_seconds'), histogram(await scrape(origin), 'sidecar_overhead_seconds'));
    const cpu = cpuBetween(p0, p1) ?? Number.NaN;
    return {
      cpuUsPerRequest: (cpu * 1e6) / Math.max(1, result.measuredRequests),
      overheadP50: (quantile(overhead, 0.5)?.value ?? Number.NaN) * 1000,
      overheadP99: (quantile(overhead, 0.99)?.value ?? Number.NaN) * 1000,
      e2eP99: result.latencyMs?.p99 ?? Number.NaN,
      ok: result.ok,
      failed: result.measuredRequests - result.ok,
    };
  } finally {
    await sidecar.stop();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const TRACING_AB = process.env.TRACING === 'ab';
const worktree = TRACING_AB ? null : mkdtempSync(join(tmpdir(), 'sidecar-baseline-'));
if (worktree !== null) {
  execFileSync('git', ['worktree', 'add', '--detach', '--force', worktree, ref], { cwd: ROOT, stdio: 'ignore' });
  symlinkSync(join(ROOT, 'node_modules'), join(worktree, 'node_modules'));
}
const downstream = await startDownstream(50);
const sink = process.env.TRACING === '1' || TRACING_AB ? await startOtlpSink() : null;
const tracingEnv: Record<string, string> =
  sink === null
    ? {}
    : {
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.01',
      };
const baselineEnv: Record<string, string> = Object.fromEntries(
  (process.env.BASELINE_ENV ?? '')
    .split(/\s+/)
    .filter((pair) => pair.includes('='))
    .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
);
const variants = {
  baseline: { main: join(worktree ?? ROOT, 'src/main.ts'), env: { ...(TRACING_AB ? {} : tracingEnv), ...baselineEnv } },
  candidate: { main: join(ROOT, 'src/main.ts'), env: tracingEnv },
};
const runs: Record<keyof typeof variants, Figures[]> = { baseline: [], candidate: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['baseline', 'candidate'] as const) : (['candidate', 'baseline'] as const);
    for (const name of order) {
      const figures = await measure(variants[name].main, `${downstream.url}/batch`, variants[name].env);
      runs[name].push(figures);
      console.log(`round ${round + 1} ${name.padEnd(9)} cpu ${figures.cpuUsPerRequest.toFixed(1)} µs/req, overhead p50 ${figures.overheadP50.toFixed(2)} p99 ${figures.overheadP99.toFixed(2)} ms, e2e p99 ${figures.e2eP99.toFixed(1)} ms, ok ${figures.ok}, failed ${figures.failed}`);
    }
  }
} finally {
  await downstream.stop();
  await sink?.close();
  killAll();
  if (worktree !== null) {
    execFileSync('git', ['worktree', 'remove', '--force', worktree], { cwd: ROOT, stdio: 'ignore' });
    rmSync(worktree, { recursive: true, force: true });
  }
}

const summary = (key: keyof Figures) => {
  const before = median(runs.baseline.map((figures) => figures[key]));
  const after = median(runs.candidate.map((figures) => figures[key]));
  return `${key}: baseline ${before.toFixed(2)}, candidate ${after.toFixed(2)}, candidate/baseline ${(after / before).toFixed(2)}`;
};
console.log(`\n${TRACING_AB ? 'tracing off vs on' : `${ref} vs working tree`} at ${RATE} req/s open loop, ${ROUNDS} rounds of ${SECONDS} s, medians:`);
for (const key of ['cpuUsPerRequest', 'overheadP50', 'overheadP99', 'e2eP99'] as const) console.log(`  ${summary(key)}`);
