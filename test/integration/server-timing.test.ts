/**
 * `server-timing` from the real process: queue (accepted → batch sent),
 * downstream (the batch's call) and sidecar (time in the sidecar − downstream)
 * on every answer whose batch was sent, none on answers whose batch never was,
 * and none at all with SERVER_TIMING=false.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';

const TIMING = /^queue;dur=(\d+(?:\.\d)?), downstream;dur=(\d+(?:\.\d)?), sidecar;dur=(\d+(?:\.\d)?)$/;

function timing(header: unknown): { queue: number; downstream: number; sidecar: number } {
  expect(typeof header).toBe('string');
  const match = TIMING.exec(header as string);
  expect(match, String(header)).not.toBeNull();
  const [, queue, downstream, sidecar] = match!.map(Number);
  return { queue, downstream, sidecar };
}

describe('server-timing', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 60 });
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '1',
      BATCH_MAX_WAIT_MS: '40',
      DOWNSTREAM_TIMEOUT_MS: '300',
    });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });
  beforeEach(() => downstream.set({ behaviour: 'ok', latencyMs: 60 }));

  it('tells each caller its queue, downstream and sidecar time on a 200', async () => {
    const answers = await Promise.all([1, 2, 3].map((id) => post(sidecar.url, { id })));
    const queues: number[] = [];
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      const { queue, downstream: call, sidecar: own } = timing(answer.headers['server-timing']);
      queues.push(queue);
      expect(queue).toBeLessThan(40 + 200);
      expect(call).toBeGreaterThanOrEqual(55);
      expect(call).toBeLessThan(answer.ms);
      // Time in the sidecar minus the call: at least the queue time.
      expect(own).toBeGreaterThanOrEqual(queue - 1);
      expect(queue + call).toBeLessThanOrEqual(answer.ms + 1);
    }
    // The first item waited the whole 40 ms window.
    expect(Math.max(...queues)).toBeGreaterThanOrEqual(38);
    // One batch: the same downstream figure for all three.
    expect(new Set(answers.map((answer) => timing(answer.headers['server-timing']).downstream)).size).toBe(1);
  });

  it('carries it on a 502 and a 504 whose batch was sent', async () => {
    downstream.set({ behaviour: 'status-500' });
    const failed = await post(sidecar.url, { id: 'failed' });
    expect(failed.status).toBe(502);
    expect(timing(failed.headers['server-timing']).downstream).toBeGreaterThanOrEqual(55);

    downstream.set({ behaviour: 'hang' });
    const timedOut = await post(sidecar.url, { id: 'slow' });
    expect(timedOut.status).toBe(504);
    expect(timedOut.body).toMatchObject({ code: 'SIDECAR_ERR_DOWNSTREAM_TIMEOUT' });
    expect(timing(timedOut.headers['server-timing']).downstream).toBeGreaterThanOrEqual(290);

    // A deadline that passes while the call runs: the call so far.
    const expired = await post(sidecar.url, { id: 'expired' }, { 'x-timeout-ms': '150' });
    expect(expired.status).toBe(504);
    expect(expired.body).toMatchObject({ code: 'SIDECAR_ERR_DEADLINE_EXCEEDED' });
    const { queue, downstream: call } = timing(expired.headers['server-timing']);
    expect(queue + call).toBeGreaterThanOrEqual(140);
  });

  it('leaves it off answers whose batch was never sent', async () => {
    const queued = await post(sidecar.url, { id: 'queued' }, { 'x-timeout-ms': '10' });
    expect(queued.status).toBe(504);
    expect(queued.headers['server-timing']).toBeUndefined();
    const bad = await post(sidecar.url, '{"broken', {}, true);
    expect(bad.status).toBe(400);
    expect(bad.headers['server-timing']).toBeUndefined();
  });
});

describe('SERVER_TIMING=false', () => {
  it('answers without server-timing', async () => {
    const downstream = await LegacyDownstream.start({ latencyMs: 5 });
    const sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '2', SERVER_TIMING: 'false' });
    try {
      const answer = await post(sidecar.url, { id: 1 });
      expect(answer.status).toBe(200);
      expect(answer.headers['server-timing']).toBeUndefined();
    } finally {
      await sidecar.stop();
      await downstream.close();
    }
  });
});
