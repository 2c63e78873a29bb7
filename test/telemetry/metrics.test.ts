/**
 * /metrics of the real process: valid Prometheus text, and figures that match
 * the traffic the test sent and the batches the simulated downstream received.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';
import { parsePrometheus, sumOf, valueOf } from '../../sim/prometheus.ts';
import { request } from 'undici';

describe('metrics', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 20 });
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '3',
      BATCH_MAX_SIZE: '10',
      BATCH_MAX_WAIT_MS: '5',
      MAX_BODY_BYTES: '1024',
    });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });

  async function scrape() {
    const response = await request(`${sidecar.url}/metrics`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return parsePrometheus(await response.body.text());
  }

  it('counts requests by outcome and batches as the downstream saw them', async () => {
    const ok = await Promise.all(Array.from({ length: 57 }, (_, id) => post(sidecar.url, { key: `k${id % 7}`, id })));
    expect(ok.every((answer) => answer.status === 200)).toBe(true);
    await post(sidecar.url, '{broken', {}, true);
    await post(sidecar.url, 'text', { 'content-type': 'text/plain' }, true);
    await post(sidecar.url, JSON.stringify({ pad: 'x'.repeat(2000) }), {}, true);
    downstream.set({ behaviour: 'status-500' });
    const failed = await Promise.all([1, 2, 3].map((id) => post(sidecar.url, { key: 'same', id })));
    expect(failed.every((answer) => answer.status === 502)).toBe(true);
    downstream.set({ behaviour: 'ok' });

    const samples = await scrape();
    const requests = (outcome: string) => valueOf(samples, 'sidecar_requests_total', { outcome });
    expect(requests('ok')).toBe(57);
    expect(requests('bad_request')).toBe(1);
    expect(requests('unsupported_media_type')).toBe(1);
    expect(requests('too_large')).toBe(1);
    expect(requests('downstream_error')).toBe(3);
    expect(requests('queue_full')).toBe(0);

    expect(valueOf(samples, 'sidecar_batch_size_count')).toBe(downstream.batches);
    expect(valueOf(samples, 'sidecar_batch_size_sum')).toBe(downstream.items);
    expect(sumOf(samples, 'sidecar_batches_total')).toBe(downstream.batches);
    expect(valueOf(samples, 'sidecar_batch_size_bucket', { le: '10' })).toBe(downstream.batches);
    expect(valueOf(samples, 'sidecar_downstream_duration_seconds_count')).toBe(downstream.batches);
    // Every item that went downstream has an overhead observation.
    expect(valueOf(samples, 'sidecar_overhead_seconds_count')).toBe(60);
    // Added latency is small next to the 5 ms window plus the machine's noise.
    const overheadSum = valueOf(samples, 'sidecar_overhead_seconds_sum')!;
    expect(overheadSum / 60).toBeLessThan(0.5);
  });

  it('reports queue depth and in-flight batches per shard, back to 0 when idle', async () => {
    downstream.set({ latencyMs: 400 });
    const pending = Promise.all(Array.from({ length: 30 }, (_, id) => post(sidecar.url, { id })));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const busy = await scrape();
    expect(sumOf(busy, 'sidecar_inflight_batches')).toBeGreaterThan(0);
    expect(busy.filter((sample) => sample.name === 'sidecar_queue_depth').map((sample) => sample.labels.shard).sort()).toEqual(['0', '1', '2']);
    await pending;
    downstream.set({ latencyMs: 20 });
    const idle = await scrape();
    expect(sumOf(idle, 'sidecar_inflight_batches')).toBe(0);
    expect(sumOf(idle, 'sidecar_queue_depth')).toBe(0);
  });
});
