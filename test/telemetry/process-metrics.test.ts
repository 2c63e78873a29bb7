/**
 * The process metrics: every default metric of prom-client, with the
 * event-loop delay sampled only while batches are out.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ProcessMetrics } from '../../src/telemetry/process-metrics.ts';
import { parsePrometheus, valueOf } from '../../sim/prometheus.ts';

async function scrape(registry: Registry) {
  return parsePrometheus(await registry.metrics());
}

function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('process metrics', () => {
  it("has every metric of prom-client's default collectors", async () => {
    const ours = new Registry();
    new ProcessMetrics(ours);
    const theirs = new Registry();
    collectDefaultMetrics({ register: theirs });
    const names = (registry: Registry) => registry.getMetricsAsArray().map((metric) => metric.name).sort();
    expect(names(ours)).toEqual(names(theirs));
    expect(names(ours)).toContain('nodejs_eventloop_lag_p99_seconds');
  });

  it('samples the event-loop delay while a batch is out, and reads 0 after a scrape interval with none', async () => {
    const registry = new Registry();
    const metrics = new ProcessMetrics(registry);
    metrics.batchOut();
    metrics.batchOut();
    await sleep(30);
    stall(60);
    await sleep(30);
    metrics.batchBack();
    let samples = await scrape(registry);
    // One batch is still out: the loop's 60 ms stall was recorded.
    expect(valueOf(samples, 'nodejs_eventloop_lag_max_seconds')).toBeGreaterThanOrEqual(0.05);
    expect(valueOf(samples, 'nodejs_eventloop_lag_p50_seconds')).toBeGreaterThan(0);

    metrics.batchBack();
    samples = await scrape(registry);
    // Stopped when the last batch came back: this interval recorded nothing.
    await sleep(30);
    stall(60);
    samples = await scrape(registry);
    expect(valueOf(samples, 'nodejs_eventloop_lag_max_seconds')).toBe(0);
    expect(valueOf(samples, 'nodejs_eventloop_lag_p99_seconds')).toBe(0);
    // The scrape-time lag is measured either way.
    expect(valueOf(samples, 'nodejs_eventloop_lag_seconds')).toBeGreaterThan(0);
  });
});
