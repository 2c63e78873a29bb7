/**
 * Edge stamps and admission control against the real process (SPEC §2, ADR
 * 0021): `x-request-start` in its three forms, the deadline counted from the
 * stamp (504 at once, before the body is read, never sent), the edge wait in
 * `server-timing` and `sidecar_edge_wait_seconds`, stamps ignored when they do
 * not parse or lie in the future, and old requests refused with 503 while a
 * backlog of edge waits stands.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { parsePrometheus, valueOf } from '../../sim/prometheus.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';

async function metrics(url: string) {
  return parsePrometheus(await (await request(`${url}/metrics`)).body.text());
}

describe('edge stamps and admission control', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 5, record: true });
    sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '2', REQUEST_TIMEOUT_MS: '2000' });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });

  it('reads the stamp in every form, shows the edge wait in server-timing, and counts the deadline from it', async () => {
    const now = Date.now();
    const forms = [`t=${((now - 300) / 1000).toFixed(3)}`, String(now - 300), `${(now - 300) * 1000}`, `t=${now - 300}`];
    for (const stamp of forms) {
      const answer = await post(sidecar.url, { key: stamp }, { 'x-request-start': stamp });
      expect(answer.status).toBe(200);
      const edge = /edge;dur=([\d.]+)/.exec(String(answer.headers['server-timing']));
      expect(edge, stamp).not.toBeNull();
      expect(Number(edge![1])).toBeGreaterThanOrEqual(290);
    }
    // 1,900 ms at the edge of a 2,000 ms deadline, 150 ms left: a 200 ms downstream call cannot make it.
    downstream.set({ latencyMs: 200 });
    const late = await post(sidecar.url, { key: 'late' }, { 'x-request-start': String(Date.now() - 1_900) });
    downstream.set({ latencyMs: 5 });
    expect(late.status).toBe(504);
    expect(late.body).toMatchObject({ code: 'SIDECAR_ERR_DEADLINE_EXCEEDED' });
    const observed = await metrics(sidecar.url);
    expect(valueOf(observed, 'sidecar_edge_wait_seconds_count')).toBeGreaterThanOrEqual(5);
  });

  it('answers 504 at once, and never sends, a request whose deadline passed at the edge', async () => {
    downstream.reset();
    const expired = await post(sidecar.url, { key: 'expired' }, { 'x-request-start': String(Date.now() - 2_500) });
    expect(expired.status).toBe(504);
    expect(expired.body).toMatchObject({ statusCode: 504, code: 'SIDECAR_ERR_DEADLINE_EXCEEDED' });
    const lowered = await post(sidecar.url, { key: 'lowered' }, { 'x-request-start': String(Date.now() - 150), 'x-timeout-ms': '100' });
    expect(lowered.status).toBe(504);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(downstream.received).toHaveLength(0);
    expect(valueOf(await metrics(sidecar.url), 'sidecar_requests_total', { outcome: 'timeout' })).toBeGreaterThanOrEqual(2);
  });

  it('ignores a stamp that does not parse or lies more than 1 s ahead', async () => {
    for (const stamp of ['yesterday', String(Date.now() + 5_000), '-1']) {
      const answer = await post(sidecar.url, { key: stamp }, { 'x-request-start': stamp });
      expect(answer.status, stamp).toBe(200);
      expect(String(answer.headers['server-timing'])).not.toContain('edge;');
    }
  });

  it('while every request waited past ADMISSION_MAX_EDGE_WAIT_MS at the edge, refuses those too old to be answered within MAX_QUEUE_WAIT_MS with 503 and retry-after, and serves the fresh', async () => {
    const refused: unknown[] = [];
    const retryAfter: number[] = [];
    // A backlog stands: for half a second every request arrives 1,200 ms old (past
    // the 500 ms budget, and past MAX_QUEUE_WAIT_MS, 1 s, whatever the sidecar takes).
    const until = performance.now() + 500;
    while (performance.now() < until) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => post(sidecar.url, { key: `old${i}` }, { 'x-request-start': String(Date.now() - 1_200) })),
      );
      for (const answer of answers) {
        if (answer.status === 503) {
          refused.push(answer.body);
          retryAfter.push(Number(answer.headers['retry-after']));
        } else expect(answer.status).toBe(200);
      }
    }
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({ statusCode: 503, code: 'SIDECAR_ERR_OVERLOADED', error: 'Service Unavailable' });
    expect(retryAfter.every((seconds) => seconds >= 1 && seconds <= 60)).toBe(true);
    // A fresh request in the same backlog is served.
    const fresh = await post(sidecar.url, { key: 'fresh' }, { 'x-request-start': String(Date.now()) });
    expect(fresh.status).toBe(200);
    const counted = await metrics(sidecar.url);
    expect(valueOf(counted, 'sidecar_requests_total', { outcome: 'overloaded' })).toBe(refused.length);
    // Once the backlog is gone (an interval of fresh requests), old ones are served again.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await post(sidecar.url, { key: 'fresh2' }, { 'x-request-start': String(Date.now()) });
    await new Promise((resolve) => setTimeout(resolve, 150));
    await post(sidecar.url, { key: 'fresh3' }, { 'x-request-start': String(Date.now()) });
    expect((await post(sidecar.url, { key: 'old-again' }, { 'x-request-start': String(Date.now() - 800) })).status).toBe(200);
    expect(valueOf(await metrics(sidecar.url), 'sidecar_admission_overloaded')).toBe(0);
  });

  it('never refuses unstamped work by admission (a saturated closed loop is served)', async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => post(sidecar.url, { key: `c${i}` })));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
  });
});

describe('REQUEST_START_HEADER', () => {
  it('empty: stamps are ignored (no edge wait, no 504 for an old one)', async () => {
    const downstream = await LegacyDownstream.start({ latencyMs: 5 });
    const sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '1', REQUEST_TIMEOUT_MS: '2000', REQUEST_START_HEADER: '' });
    try {
      const answer = await post(sidecar.url, { key: 'x' }, { 'x-request-start': String(Date.now() - 5_000) });
      expect(answer.status).toBe(200);
      expect(String(answer.headers['server-timing'])).not.toContain('edge;');
    } finally {
      await sidecar.stop();
      await downstream.close();
    }
  });

  it('names another header', async () => {
    const downstream = await LegacyDownstream.start({ latencyMs: 5 });
    const sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '1', REQUEST_TIMEOUT_MS: '2000', REQUEST_START_HEADER: 'X-Queue-Start' });
    try {
      expect((await post(sidecar.url, { key: 'x' }, { 'x-queue-start': String(Date.now() - 5_000) })).status).toBe(504);
      expect((await post(sidecar.url, { key: 'y' }, { 'x-request-start': String(Date.now() - 5_000) })).status).toBe(200);
    } finally {
      await sidecar.stop();
      await downstream.close();
    }
  });
});
