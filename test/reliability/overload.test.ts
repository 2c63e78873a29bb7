/**
 * Overload: offered load far above what the downstream can take. The sidecar
 * must shed with fast 503s, never hold more than MAX_QUEUE_PER_SHARD per shard,
 * keep RSS and the accepted requests' latency bounded, and recover fully.
 * OVERLOAD_SECONDS sets the duration: 5 s in `npm test`, 30 s in `npm run test:soak`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';
import { parsePrometheus, sumOf, valueOf } from '../../sim/prometheus.ts';

const SECONDS = Number(process.env.OVERLOAD_SECONDS ?? 5);
const MAX_QUEUE = 100;
const SHARDS = 2;

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

describe(`overload for ${SECONDS} s`, () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    // Capacity: 2 shards x 1 call x 20 items per 100 ms = 400 items/s.
    downstream = await LegacyDownstream.start({ latencyMs: 100 });
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: String(SHARDS),
      BATCH_MAX_SIZE: '20',
      MAX_INFLIGHT_BATCHES: '1',
      MAX_QUEUE_PER_SHARD: String(MAX_QUEUE),
    });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });

  const scrape = async () => parsePrometheus(await (await request(`${sidecar.url}/metrics`)).body.text());

  it('sheds with fast 503s, bounds the queue, memory and latency, and recovers', { timeout: (SECONDS + 60) * 1000 }, async () => {
    const accepted: number[] = [];
    const shed: number[] = [];
    const other: string[] = [];
    let running = true;
    const worker = async (w: number) => {
      for (let n = 0; running; n++) {
        const answer = await post(sidecar.url, { key: `k${(w * 31 + n) % 64}`, n });
        if (answer.status === 200) accepted.push(answer.ms);
        else if (answer.status === 503 && answer.headers['retry-after'] !== undefined) shed.push(answer.ms);
        else other.push(`${answer.status} ${JSON.stringify(answer.body)}`);
      }
    };
    const workers = Array.from({ length: 600 }, (_, w) => worker(w));

    let maxQueue = 0;
    let maxRss = 0;
    const deadline = performance.now() + SECONDS * 1000;
    while (performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const samples = await scrape();
      for (const sample of samples.filter((s) => s.name === 'sidecar_queue_depth')) maxQueue = Math.max(maxQueue, sample.value);
      maxRss = Math.max(maxRss, valueOf(samples, 'process_resident_memory_bytes') ?? 0);
    }
    running = false;
    await Promise.all(workers);

    accepted.sort((a, b) => a - b);
    shed.sort((a, b) => a - b);
    const offered = (accepted.length + shed.length) / SECONDS;
    console.log(
      `overload ${SECONDS} s: offered ${Math.round(offered)} req/s, accepted ${accepted.length} (p99 ${percentile(accepted, 0.99).toFixed(0)} ms), ` +
        `shed ${shed.length} (p50 ${percentile(shed, 0.5).toFixed(1)} ms, p99 ${percentile(shed, 0.99).toFixed(1)} ms), ` +
        `max queue ${maxQueue}, max RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB, other ${other.length}`,
    );
    expect(other).toEqual([]);
    expect(shed.length).toBeGreaterThan(accepted.length); // far above capacity
    expect(maxQueue).toBeLessThanOrEqual(MAX_QUEUE);
    // A shed answer takes no queueing: far faster than an accepted one.
    expect(percentile(shed, 0.5)).toBeLessThan(percentile(accepted, 0.5) / 2);
    // Accepted latency is bounded by the queue: MAX_QUEUE items per shard drain
    // at 200 items/s, so about 0.5 s plus the call, whatever the offered load.
    expect(percentile(accepted, 0.99)).toBeLessThan(5000);
    expect(maxRss).toBeLessThan(400 * 2 ** 20);

    // Recovery: normal traffic succeeds, nothing is left held.
    const after = await Promise.all(Array.from({ length: 40 }, (_, n) => post(sidecar.url, { n })));
    expect(after.every((answer) => answer.status === 200)).toBe(true);
    const idle = await scrape();
    expect(sumOf(idle, 'sidecar_queue_depth') + sumOf(idle, 'sidecar_inflight_batches')).toBe(0);
    // Every answer was counted under its outcome: the shed ones as queue_full (the shard holds MAX_QUEUE_PER_SHARD)
    // or queue_wait (the wait ahead would outlast MAX_QUEUE_WAIT_MS); nothing here is stamped, so admission refuses none.
    const outcome = (name: string) => valueOf(idle, 'sidecar_requests_total', { outcome: name });
    expect((outcome('queue_full') ?? 0) + (outcome('queue_wait') ?? 0)).toBe(shed.length);
    expect(outcome('overloaded')).toBe(0);
    expect(outcome('ok')).toBe(accepted.length + after.length);
  });
});
