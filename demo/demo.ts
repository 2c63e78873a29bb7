/**
 * `npm run demo`: a simulated legacy downstream (50 ms ± 10 ms per call), the
 * sidecar in front of it, a short autocannon burst with a progress bar, and a
 * summary: throughput, latency, the sidecar's added latency, batch sizes.
 * Then the sidecar keeps serving until Ctrl-C, which drains it gracefully.
 *
 * Environment: DEMO_PORT (sidecar, default 8080), DEMO_DURATION_S (5),
 * DEMO_CONNECTIONS (400), DEMO_LATENCY_MS (50), DEMO_JITTER_MS (10), and
 * any sidecar variable (SHARD_COUNT, BATCH_MAX_SIZE, ...).
 */
import autocannon from 'autocannon';
import { histogram, quantile, scrape } from '../bench/metrics.ts';
import { LegacyDownstream } from '../sim/legacy-downstream.ts';
import { startSidecar } from '../sim/sidecar-process.ts';

const env = process.env;
const port = env.DEMO_PORT ?? '8080';
const durationS = Number(env.DEMO_DURATION_S ?? 5);
const connections = Number(env.DEMO_CONNECTIONS ?? 400);
const latencyMs = Number(env.DEMO_LATENCY_MS ?? 50);
const jitterMs = Number(env.DEMO_JITTER_MS ?? 10);

const downstream = await LegacyDownstream.start({ latencyMs, jitterMs });
const sidecarEnv: Record<string, string> = {};
for (const [name, value] of Object.entries(env)) {
  if (value !== undefined && /^(SHARD_|BATCH_|MAX_|REQUEST_|DOWNSTREAM_|SHUTDOWN_|LOG_LEVEL|OTEL_)/.test(name)) {
    sidecarEnv[name] = value;
  }
}
const sidecar = await startSidecar({
  ...sidecarEnv,
  PORT: port,
  HOST: '127.0.0.1',
  DOWNSTREAM_URL: downstream.url,
});
console.log(`\nlegacy downstream: ${downstream.url} (${latencyMs} ms ± ${jitterMs} ms per call)`);
console.log(`sidecar:           ${sidecar.url}/process\n`);
console.log(`burst: ${connections} connections for ${durationS} s, each request {"key":"user-N","id":N}`);

const result = await new Promise<autocannon.Result>((resolve, reject) => {
  const instance = autocannon(
    {
      url: `${sidecar.url}/process`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"key":"user-[<id>]","id":"[<id>]"}',
      idReplacement: true,
      connections,
      duration: durationS,
      timeout: 20,
    },
    (error, done) => (error ? reject(error) : resolve(done)),
  );
  autocannon.track(instance, { renderProgressBar: true, renderResultsTable: false, renderLatencyTable: false });
});

const answered = result.requests.total;
const meanDownstreamMs = downstream.batches > 0 ? downstream.busyMs / downstream.batches : 0;
const sizes = downstream.sizes
  .map((count, size) => ({ size, count }))
  .filter((entry) => entry.count !== undefined && entry.count > 0);
const meanBatch = downstream.batches > 0 ? downstream.items / downstream.batches : 0;

console.log('\nresults');
console.log(`  requests:         ${answered} answered, ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
console.log(`  throughput:       ${Math.round(result.requests.average)} req/s`);
console.log(
  `  latency (client): p50 ${result.latency.p50} ms, p90 ${result.latency.p90} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms`,
);
const overhead = histogram(await scrape(sidecar.url), 'sidecar_overhead_seconds');
const ms = (q: number) => ((quantile(overhead, q)?.value ?? Number.NaN) * 1000).toFixed(1);
console.log(
  `  overhead:         p50 ${ms(0.5)} ms, p99 ${ms(0.99)} ms (sidecar_overhead_seconds: time in the sidecar minus the downstream call, the ${env.BATCH_MAX_WAIT_MS ?? 10} ms window included)`,
);
console.log(
  `  as the client saw it: ${Math.max(0, result.latency.average - meanDownstreamMs).toFixed(1)} ms mean added (client mean ${result.latency.average.toFixed(1)} ms - downstream mean ${meanDownstreamMs.toFixed(1)} ms; client queueing included)`,
);
console.log(
  `  downstream:       ${downstream.batches} calls for ${downstream.items} items = ${((1000 * downstream.batches) / Math.max(1, downstream.items)).toFixed(1)} calls per 1,000 requests`,
);
console.log(`  batch size:       mean ${meanBatch.toFixed(1)}`);
const buckets = [1, 10, 25, 50, 75, 99, 100, Infinity];
let from = 1;
for (const to of buckets) {
  const count = sizes.filter((entry) => entry.size >= from && entry.size <= to).reduce((sum, entry) => sum + entry.count, 0);
  if (count > 0) {
    const share = count / downstream.batches;
    const label = to === Infinity ? `>${from - 1}` : from === to ? `${to}` : `${from}-${to}`;
    console.log(`    ${label.padStart(7)} items: ${'#'.repeat(Math.max(1, Math.round(share * 40))).padEnd(40)} ${count}`);
  }
  from = to + 1;
}

console.log(`\nThe sidecar keeps serving at ${sidecar.url}/process — try:`);
console.log(`  curl -s -XPOST ${sidecar.url}/process -H 'content-type: application/json' -d '{"key":"a","hello":"world"}'`);
console.log('Press Ctrl-C to drain and stop.\n');

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  // The sidecar runs in its own process group, so Ctrl-C reaches it only
  // through this one signal (a second one would make it exit at once).
  sidecar.signal('SIGINT');
  const exit = await sidecar.exited;
  await downstream.close();
  console.log(`sidecar drained and exited with code ${exit.code}`);
  process.exit(exit.code ?? 1);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
