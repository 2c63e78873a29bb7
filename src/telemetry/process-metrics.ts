/**
 * prom-client's process metrics (CPU, memory, handles, GC, version), with
 * the event-loop delay sampled only while batches are out (issue 20: idle is
 * idle).
 *
 * prom-client's own event-loop lag collector keeps a libuv timer running
 * for the life of the process (its `eventLoopMonitoringPrecision`, with no
 * way to stop or exclude it: prometheus/client_js#494, #523, #623). Each tick
 * wakes an idle process: on the 2-core bench machine a 100 ms timer cost
 * 1.25 ms of CPU a second, a 10 ms one about ten times that, where a Node
 * process with no timer spends nothing. So every default collector but that
 * one is registered as prom-client registers it, and the same eight
 * `nodejs_eventloop_lag_*` gauges are computed here from a sampler at
 * prom-client's default resolution that runs while a downstream call is out:
 * while there is work whose answers the loop could delay. Their meaning is
 * prom-client's (the recorded delays, since the last scrape); with no batch
 * out since then, the percentiles read 0.
 */
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** The sampler's resolution, ms: prom-client's default `eventLoopMonitoringPrecision`. */
const RESOLUTION_MS = 10;

type Collector = (registry: Registry, config: Record<string, unknown>) => void;
type Histogram = ReturnType<typeof monitorEventLoopDelay>;
const require = createRequire(import.meta.url);
/** prom-client's default collectors by name (its `metricsList`), each in lib/metrics/<name>.js. */
const { metricsList } = require('prom-client/lib/defaultMetrics') as { metricsList: readonly string[] };
/** The one collector replaced here. */
const REPLACED_COLLECTOR = 'eventLoopLag';

/** The seven summary gauges beside nodejs_eventloop_lag_seconds: suffix, help, aggregator, and what each reads of the sampler (ns). */
const SUMMARY: readonly [string, string, 'min' | 'max' | 'average', (h: Histogram) => number][] = [
  ['min', 'The minimum recorded event loop delay.', 'min', (h) => h.min],
  ['max', 'The maximum recorded event loop delay.', 'max', (h) => h.max],
  ['mean', 'The mean of the recorded event loop delays.', 'average', (h) => h.mean],
  ['stddev', 'The standard deviation of the recorded event loop delays.', 'average', (h) => h.stddev],
  ['p50', 'The 50th percentile of the recorded event loop delays.', 'average', (h) => h.percentile(50)],
  ['p90', 'The 90th percentile of the recorded event loop delays.', 'average', (h) => h.percentile(90)],
  ['p99', 'The 99th percentile of the recorded event loop delays.', 'average', (h) => h.percentile(99)],
];

export class ProcessMetrics {
  private readonly sampler: Histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  /** Batches out now (sent, not yet settled). */
  private out = 0;

  constructor(registry: Registry) {
    const config = { register: registry, eventLoopMonitoringPrecision: RESOLUTION_MS };
    for (const name of metricsList) {
      if (name !== REPLACED_COLLECTOR) (require(`prom-client/lib/metrics/${name}`) as Collector)(registry, config);
    }
    const sampler = this.sampler;
    // Registered first, as prom-client registers it: its `collect` sets the other seven before they are read.
    new Gauge({
      name: 'nodejs_eventloop_lag_seconds',
      help: 'Lag of event loop in seconds.',
      registers: [registry],
      aggregator: 'average',
      // As prom-client's: this gauge measures a setImmediate at scrape time.
      collect() {
        const start = process.hrtime.bigint();
        setImmediate(() => this.set(Number(process.hrtime.bigint() - start) / 1e9));
        const recorded = sampler.count > 0;
        SUMMARY.forEach(([, , , read], i) => summary[i]!.set(recorded ? read(sampler) / 1e9 : 0));
        sampler.reset();
      },
    });
    const summary = SUMMARY.map(
      ([suffix, help, aggregator]) => new Gauge({ name: `nodejs_eventloop_lag_${suffix}_seconds`, help, registers: [registry], aggregator }),
    );
  }

  /** A batch left for the downstream: the first one out starts the sampler. */
  batchOut(): void {
    if (this.out++ === 0) this.sampler.enable();
  }

  /** A batch out was settled: the last one back stops the sampler. */
  batchBack(): void {
    if (this.out > 0 && --this.out === 0) this.sampler.disable();
  }
}
