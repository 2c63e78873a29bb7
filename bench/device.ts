/**
 * The many-core run (SPEC §10, the 50,000 req/s question): on a machine with
 * enough cores that the load generators never compete with the server, does
 * ONE sidecar process sustain 50,000 req/s with p99 overhead <= 15 ms, and what
 * bounds it? Several generator processes (bench/load-worker.ts) drive:
 *   1. closed loop: the sidecar's maximum, bare Fastify's, and the sidecar with
 *      tracing on (server CPU per request, generator-independent);
 *   2. open loop at 50,000 req/s and at 80% of the measured maximum:
 *      sidecar_overhead_seconds and end-to-end percentiles.
 * Writes bench/results/device.json and device.md (or to $OUT when set).
 *
 *   node bench/device.ts      (GENERATORS, default cores/2 - 1)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { killAll, startBare, startDownstream, startSidecarChild, type Child } from './children.ts';
import { histogram, histogramDelta, quantile, scrape } from './metrics.ts';
import { startOtlpSink } from './otlp-sink.ts';
import { cpuBetween, sampleProcess } from './proc.ts';

const WORKER = fileURLToPath(new URL('./load-worker.ts', import.meta.url));
const GENERATORS = Number(process.env.GENERATORS ?? Math.max(2, Math.floor(cpus().length / 2) - 1));
const OUT = process.env.OUT ?? fileURLToPath(new URL('./results/', import.meta.url));
const lines: string[] = [];
const log = (line: string) => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};

function worker(env: Record<string, string>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>));
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`load worker exited ${code}`))));
  });
}

async function closed(target: Child, seconds: number): Promise<{ rate: number; cpuUsPerRequest: number; cpuPercent: number }> {
  const connections = String(Math.ceil(4000 / GENERATORS));
  await Promise.all(Array.from({ length: GENERATORS }, () => worker({ MODE: 'closed', URL: `${target.url}/process`, CONNECTIONS: connections, SECONDS: '3' })));
  const p0 = sampleProcess(target.pid);
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: GENERATORS }, () => worker({ MODE: 'closed', URL: `${target.url}/process`, CONNECTIONS: connections, SECONDS: String(seconds) })),
  );
  const wall = (performance.now() - started) / 1000;
  const p1 = sampleProcess(target.pid);
  const ok = results.reduce((sum, r) => sum + (r.ok as number), 0);
  const cpu = cpuBetween(p0, p1) ?? Number.NaN;
  return { rate: ok / seconds, cpuUsPerRequest: (cpu * 1e6) / ok, cpuPercent: (100 * cpu) / wall };
}

async function open(target: Child, rate: number, seconds: number) {
  const before = scrape(target.url);
  const p0 = sampleProcess(target.pid);
  const results = await Promise.all(
    Array.from({ length: GENERATORS }, () =>
      worker({ MODE: 'open', ORIGIN: target.url, RATE: String(rate / GENERATORS), WARMUP: '0', SECONDS: String(seconds) }),
    ),
  );
  const p1 = sampleProcess(target.pid);
  const overhead = histogramDelta(histogram(await before, 'sidecar_overhead_seconds'), histogram(await scrape(target.url), 'sidecar_overhead_seconds'));
  const worst = (key: 'p50' | 'p99' | 'p999') => Math.max(...results.map((r) => ((r.latency as Record<string, number> | null)?.[key] ?? Number.NaN)));
  return {
    offered: rate,
    achieved: results.reduce((sum, r) => sum + (r.achieved as number), 0),
    unfinished: results.reduce((sum, r) => sum + (r.unfinished as number), 0),
    e2e: { p50: worst('p50'), p99: worst('p99'), p999: worst('p999') },
    overheadMs: {
      p50: (quantile(overhead, 0.5)?.value ?? Number.NaN) * 1000,
      p99: (quantile(overhead, 0.99)?.value ?? Number.NaN) * 1000,
      p999: (quantile(overhead, 0.999)?.value ?? Number.NaN) * 1000,
    },
    sidecarCpuPercent: (100 * (cpuBetween(p0, p1) ?? Number.NaN)) / seconds,
  };
}

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a');

log(`# Many-core run: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, ${GENERATORS} generator processes, load ${loadavg()[0].toFixed(2)}`);
const downstream = await startDownstream(50);
const env = { DOWNSTREAM_URL: `${downstream.url}/batch`, BATCH_MAX_WAIT_MS: '10', SHARD_COUNT: '4' };
const figures: Record<string, unknown> = { cpus: cpus().length, cpuModel: cpus()[0]?.model, generators: GENERATORS };
try {
  const sidecar = await startSidecarChild(env);
  const max = await closed(sidecar, 10);
  log(`sidecar closed loop: ${f(max.rate)} req/s, ${f(max.cpuUsPerRequest, 1)} µs CPU per request, sidecar CPU ${f(max.cpuPercent)}% of one core`);
  const at50k = await open(sidecar, 50_000, 10);
  const rate80 = Math.round(0.8 * max.rate);
  const at80 = await open(sidecar, rate80, 10);
  await sidecar.stop();
  for (const [label, run] of [['50,000 req/s', at50k], [`${f(rate80)} req/s (80% of max)`, at80]] as const) {
    log(
      `open loop at ${label}: achieved ${f(run.achieved)} req/s, unanswered ${f(run.unfinished)}, sidecar CPU ${f(run.sidecarCpuPercent)}%; ` +
        `overhead p50/p99/p99.9 ${f(run.overheadMs.p50, 2)}/${f(run.overheadMs.p99, 2)}/${f(run.overheadMs.p999, 2)} ms; ` +
        `e2e p50/p99/p99.9 ${f(run.e2e.p50, 1)}/${f(run.e2e.p99, 1)}/${f(run.e2e.p999, 1)} ms`,
    );
  }
  const bare = await startBare();
  const bareMax = await closed(bare, 10);
  await bare.stop();
  log(`bare closed loop: ${f(bareMax.rate)} req/s, ${f(bareMax.cpuUsPerRequest, 1)} µs CPU per request, CPU ${f(bareMax.cpuPercent)}%`);
  const sink = await startOtlpSink();
  const traced = await startSidecarChild({
    ...env,
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.01',
  });
  const tracedMax = await closed(traced, 10);
  await traced.stop();
  await sink.close();
  log(`sidecar with tracing on: ${f(tracedMax.rate)} req/s, ${f(tracedMax.cpuUsPerRequest, 1)} µs CPU per request (${sink.exports()} OTLP exports)`);
  log('');
  log(`ratios: sidecar / bare throughput ${f(max.rate / bareMax.rate, 2)}×, by server CPU per request ${f(bareMax.cpuUsPerRequest / max.cpuUsPerRequest, 2)}×; tracing on / off ${f(tracedMax.rate / max.rate, 2)}×`);
  Object.assign(figures, { sidecar: max, bare: bareMax, traced: tracedMax, at50k, at80 });
} finally {
  await downstream.stop();
  killAll();
}
mkdirSync(OUT, { recursive: true });
writeFileSync(`${OUT}/device.json`, `${JSON.stringify(figures, null, 2)}\n`);
writeFileSync(`${OUT}/device.md`, `${lines.join('\n')}\n`);
process.exit(0);
