/**
 * Traces one sidecar's adaptive window under a fixed open-loop rate: scrapes
 * /metrics every 100 ms and prints per-shard window, calls in flight and queue
 * depth. An investigation aid for ADR 0016, not part of `npm run bench`.
 *
 *   MODE=adaptive RATE=1000 LATENCY_MS=200 INFLIGHT=18 SECONDS=8 node bench/window-trace.ts
 */
import { killAll, startDownstream, startSidecarChild } from './children.ts';
import * as metrics from './metrics.ts';
import { OpenLoop } from './open-loop.ts';
import { sleep } from './stats.ts';

const env = process.env;
const rate = Number(env.RATE ?? 1000);
const seconds = Number(env.SECONDS ?? 8);
const downstream = await startDownstream(Number(env.LATENCY_MS ?? 200));
const sidecar = await startSidecarChild({
  DOWNSTREAM_URL: downstream.url,
  SHARD_COUNT: '4',
  BATCH_MAX_WAIT_MS: '10',
  BATCH_MIN_WAIT_MS: '1',
  BATCH_WINDOW_MODE: env.MODE ?? 'adaptive',
  MAX_INFLIGHT_BATCHES: env.INFLIGHT ?? '18',
});
try {
  const bodies = Array.from({ length: 64 }, (_, i) => Buffer.from(JSON.stringify({ key: `user-${i}`, id: i })));
  const loop = new OpenLoop({ origin: sidecar.url, path: '/process', rate, warmupMs: 0, durationMs: seconds * 1000, bodies, connections: 4000 });
  const started = performance.now();
  const sending = loop.start();
  let done = false;
  void sending.then(() => (done = true));
  while (!done) {
    await sleep(100);
    const scrape = await metrics.scrape(sidecar.url);
    const w = metrics.byLabel(scrape, 'sidecar_batch_window_seconds', 'shard') ?? {};
    const f = metrics.byLabel(scrape, 'sidecar_inflight_batches', 'shard') ?? {};
    const q = metrics.byLabel(scrape, 'sidecar_queue_depth', 'shard') ?? {};
    const calls = metrics.sum(scrape, 'sidecar_batches_total');
    const shards = Object.keys(w).sort();
    process.stdout.write(
      `${((performance.now() - started) / 1000).toFixed(1)} s  calls ${calls}  ` +
        shards.map((s) => `[${s}] w ${((w[s] ?? 0) * 1000).toFixed(1)} f ${f[s]} q ${q[s]}`).join('  ') +
        '\n',
    );
  }
  const result = await loop.finish();
  process.stdout.write(`p50 ${result.latencyMs?.p50.toFixed(1)} p99 ${result.latencyMs?.p99.toFixed(1)} ms, batches ${result.batches} for ${result.batchedItems}\n`);
} finally {
  await sidecar.stop();
  await downstream.stop();
  killAll();
}
