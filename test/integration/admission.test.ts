/**
 * Admission control against the real process: a downstream whose answers are
 * heavy (every result padded to 300 kB) keeps the sidecar's event loop busy
 * parsing and serialising, so the loop runs late while clients keep sending.
 * The sidecar must refuse a share of the new requests with 503
 * SIDECAR_ERR_OVERLOADED and `retry-after` before reading them, answer every
 * other one with its own result, count the refusals, and keep its probes up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { parsePrometheus, valueOf } from '../../sim/prometheus.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { get, post } from '../support/http.ts';

describe('admission control', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 5, padBytes: 300_000 });
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '2',
      ADMISSION_MAX_LOOP_DELAY_MS: '5',
      ADMISSION_SAMPLE_MS: '5',
    });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });

  it('refuses a share of new work with 503 and retry-after while the loop is saturated, and serves the rest', { timeout: 60_000 }, async () => {
    const ok: number[] = [];
    const refused: { retryAfter: number; body: unknown }[] = [];
    const other: string[] = [];
    let healthz = 0;
    const deadline = performance.now() + 4_000;
    const worker = async (w: number) => {
      for (let n = 0; performance.now() < deadline; n++) {
        const answer = await post(sidecar.url, { key: `k${w}`, n });
        if (answer.status === 200 && (answer.body as { echo: { n: number } }).echo.n === n) ok.push(n);
        else if (answer.status === 503) refused.push({ retryAfter: Number(answer.headers['retry-after']), body: answer.body });
        else other.push(`${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
      }
    };
    const probe = async () => {
      while (performance.now() < deadline) {
        if ((await get(`${sidecar.url}/healthz`)).status === 200) healthz++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    await Promise.all([...Array.from({ length: 48 }, (_, w) => worker(w)), probe()]);

    expect(other).toEqual([]);
    expect(ok.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const answer of refused) {
      expect(answer.body).toMatchObject({ statusCode: 503, code: 'SIDECAR_ERR_OVERLOADED', error: 'Service Unavailable' });
      expect(answer.retryAfter).toBeGreaterThanOrEqual(1);
      expect(answer.retryAfter).toBeLessThanOrEqual(60);
    }
    expect(healthz).toBeGreaterThan(0);

    const metrics = parsePrometheus(await (await request(`${sidecar.url}/metrics`)).body.text());
    expect(valueOf(metrics, 'sidecar_requests_total', { outcome: 'overloaded' })).toBe(refused.length);
    expect(valueOf(metrics, 'sidecar_requests_total', { outcome: 'ok' })).toBe(ok.length);
    const share = valueOf(metrics, 'sidecar_admission_shed_ratio');
    expect(share).toBeGreaterThanOrEqual(0);
    expect(share).toBeLessThanOrEqual(0.5);
    expect(valueOf(metrics, 'sidecar_admission_loop_delay_seconds')).toBeGreaterThanOrEqual(0);

    // Once the load stops, the loop keeps up again and nothing is refused.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await post(sidecar.url, { key: 'after', n: 0 });
    expect(after.status).toBe(200);
  });
});
