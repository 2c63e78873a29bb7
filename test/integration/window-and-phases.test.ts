/**
 * The batch-window gauge in both modes and the lifecycle phases of a shutdown,
 * read from the real process: /metrics, /readyz and its log lines.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { sidecarPerTest } from '../support/sidecar-per-test.ts';
import { request } from 'undici';
import { shardForKey } from '../../src/actors/routing.ts';
import { parsePrometheus, valueOf } from '../../sim/prometheus.ts';
import { get, post, type Answer } from '../support/http.ts';

const run = sidecarPerTest();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const PHASES = ['starting', 'ready', 'lame_duck', 'closing', 'draining', 'stopped'];

async function scrape(url: string) {
  const response = await request(`${url}/metrics`);
  expect(response.statusCode).toBe(200);
  // Only the sidecar's own lines: right after start prom-client writes the
  // event-loop lag mean as "Nan", which the strict parser refuses.
  const text = await response.body.text();
  return parsePrometheus(text.split('\n').filter((line) => line.includes('sidecar_')).join('\n'));
}

async function windows(url: string): Promise<Record<string, number>> {
  const samples = await scrape(url);
  return Object.fromEntries(
    samples.filter((sample) => sample.name === 'sidecar_batch_window_seconds').map((sample) => [sample.labels.shard, sample.value]),
  );
}

async function phaseGauge(url: string): Promise<Record<string, number>> {
  const samples = await scrape(url);
  return Object.fromEntries(PHASES.map((phase) => [phase, valueOf(samples, 'sidecar_lifecycle_phase', { phase }) ?? Number.NaN]));
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('batch window gauge', () => {
  it('shows BATCH_MAX_WAIT_MS for every shard in fixed mode', async () => {
    const downstream = await run.downstream({ latencyMs: 5 });
    const sidecar = await run.sidecar({ DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '3', BATCH_MAX_WAIT_MS: '7' });
    await Promise.all([1, 2, 3, 4].map((id) => post(sidecar.url, { id })));
    expect(await windows(sidecar.url)).toEqual({ '0': 0.007, '1': 0.007, '2': 0.007 });
  });

  it('shrinks to BATCH_MIN_WAIT_MS while the downstream has room and widens to BATCH_MAX_WAIT_MS when calls in flight fill the slots', async () => {
    const downstream = await run.downstream({ latencyMs: 5 });
    const sidecar = await run.sidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '2',
      BATCH_WINDOW_MODE: 'adaptive',
      BATCH_MIN_WAIT_MS: '2',
      BATCH_MAX_WAIT_MS: '20',
      MAX_INFLIGHT_BATCHES: '2',
    });
    for (let id = 0; id < 10; id++) expect((await post(sidecar.url, { key: `k${id}`, id })).status).toBe(200);
    await sleep(700); // more than ten 50 ms periods with room
    expect(await windows(sidecar.url)).toEqual({ '0': 0.002, '1': 0.002 });

    // A slow downstream holds each call longer: the hot shard's two slots fill.
    downstream.set({ latencyMs: 600 });
    const pending: Promise<Answer>[] = [];
    for (let id = 0; id < 6; id++) {
      pending.push(post(sidecar.url, { key: 'hot', id }));
      await sleep(40);
    }
    const shard = String(shardForKey('hot', 2));
    const now = await windows(sidecar.url);
    expect(now[shard]).toBe(0.02);
    expect(now[shard === '0' ? '1' : '0']).toBe(0.002);
    for (const answer of await Promise.all(pending)) expect(answer.status).toBe(200);
  });
});

describe('lifecycle phases', () => {
  it('reads ready then lame_duck on /metrics, logs each phase with what is held, and ends with the drain and refusal counts', async () => {
    const downstream = await run.downstream({ latencyMs: 200 });
    const sidecar = await run.sidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '2',
      BATCH_MAX_WAIT_MS: '60000',
      SHUTDOWN_DELAY_MS: '600',
      SHUTDOWN_TIMEOUT_MS: '20000',
    });
    const url = sidecar.url;
    expect(await phaseGauge(url)).toEqual({ starting: 0, ready: 1, lame_duck: 0, closing: 0, draining: 0, stopped: 0 });

    // Three items wait in open batches (a 60 s window): only the drain sends them.
    const pending = [1, 2, 3].map((id) => post(url, { id }));
    await sleep(100);
    // A request whose headers are still arriving when the listener closes: its
    // connection stays open, and it is refused when it completes.
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST /process HTTP/1.1\r\nhost: sidecar\r\ncontent-type: application/json\r\n');
    let refusal = '';
    socket.on('data', (chunk: Buffer) => (refusal += chunk.toString()));

    sidecar.signal('SIGTERM');
    await until(() => sidecar.logs.some((entry) => entry.phase === 'lame_duck'));
    expect(await phaseGauge(url)).toEqual({ starting: 0, ready: 0, lame_duck: 1, closing: 0, draining: 0, stopped: 0 });
    expect((await get(`${url}/readyz`)).status).toBe(503);
    pending.push(post(url, { id: 4 })); // still accepted during SHUTDOWN_DELAY_MS

    await until(() => sidecar.logs.some((entry) => entry.phase === 'draining'));
    socket.end('content-length: 2\r\n\r\n{}');
    await new Promise((resolve) => socket.once('close', resolve));
    expect(refusal).toMatch(/^HTTP\/1\.1 503/);
    expect(refusal.toLowerCase()).toContain('connection: close');
    expect(refusal).toContain('SIDECAR_ERR_DRAINING');

    const answers = await Promise.all(pending);
    expect(answers.map((answer) => answer.body)).toEqual([1, 2, 3, 4].map((id) => ({ echo: { id } })));
    expect((await sidecar.exited).code).toBe(0);

    const phases = sidecar.logs.filter((entry) => typeof entry.phase === 'string');
    expect(phases.map((entry) => [entry.from, entry.phase])).toEqual([
      ['starting', 'ready'],
      ['ready', 'lame_duck'],
      ['lame_duck', 'closing'],
      ['closing', 'draining'],
      ['draining', 'stopped'],
    ]);
    for (const entry of phases) {
      expect(entry.level).toBe(30); // info
      expect(entry).toEqual(expect.objectContaining({ held: expect.any(Number), inflight: expect.any(Number), timeLeftMs: expect.any(Number) }));
    }
    const byPhase = Object.fromEntries(phases.map((entry) => [entry.phase as string, entry]));
    expect(byPhase.lame_duck).toMatchObject({ held: 3, inflight: 0, timeLeftMs: 20000 });
    expect(byPhase.draining).toMatchObject({ held: 4, inflight: 0 });
    expect(byPhase.stopped).toMatchObject({ held: 0, inflight: 0 });
    expect(byPhase.stopped.timeLeftMs as number).toBeLessThan(20000);
    const complete = sidecar.logs.find((entry) => entry.msg === 'shutdown: complete');
    expect(complete).toMatchObject({ flushedByDrain: 4, refused: 1 });
  });
});
