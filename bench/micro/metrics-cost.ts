/**
 * Micro-benchmark behind ADR 0008: the per-request metric work (one counter
 * increment with an `outcome` label, one histogram observation) with
 * prom-client and with OpenTelemetry metrics, in the same run.
 *
 *   node bench/micro/metrics-cost.ts
 */
import { metrics as otelMetrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { Counter, Histogram, Registry } from 'prom-client';

const N = Number(process.env.N ?? 2_000_000);
const BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1];

function time(label: string, run: () => void): number {
  run(); // warm-up
  const started = process.hrtime.bigint();
  run();
  const ns = Number(process.hrtime.bigint() - started) / N;
  console.log(`${label.padEnd(44)} ${ns.toFixed(1)} ns per request`);
  return ns;
}

const registry = new Registry();
const promCounter = new Counter({ name: 'requests_total', help: 'h', labelNames: ['outcome'], registers: [registry] });
const promOk = promCounter.labels('ok');
const promHistogram = new Histogram({ name: 'overhead_seconds', help: 'h', buckets: BUCKETS, registers: [registry] });
const prom = time('prom-client (bound child + observe)', () => {
  for (let i = 0; i < N; i++) {
    promOk.inc();
    promHistogram.observe((i % 100) / 10_000);
  }
});

const provider = new MeterProvider({
  readers: [
    new PeriodicExportingMetricReader({
      exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
      exportIntervalMillis: 60_000,
    }),
  ],
});
otelMetrics.setGlobalMeterProvider(provider);
const meter = otelMetrics.getMeter('bench');
const otelCounter = meter.createCounter('requests_total');
const otelHistogram = meter.createHistogram('overhead_seconds', { advice: { explicitBucketBoundaries: BUCKETS } });
const OK = { outcome: 'ok' };
const otel = time('OpenTelemetry metrics (add + record)', () => {
  for (let i = 0; i < N; i++) {
    otelCounter.add(1, OK);
    otelHistogram.record((i % 100) / 10_000);
  }
});
console.log(`OpenTelemetry / prom-client cost ratio: ${(otel / prom).toFixed(2)}`);
await provider.shutdown();
