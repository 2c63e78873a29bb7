/**
 * The queue-full 503's `retry-after` against the real process: the shard's
 * waiting items divided by its recent drain rate, 1 before any rate is known.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post, type Answer } from '../support/http.ts';

describe('retry-after on a full queue', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    // Ten items per call, one call at a time, 1 s each: 10 items/s.
    downstream = await LegacyDownstream.start({ latencyMs: 1000 });
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '1',
      BATCH_MAX_SIZE: '10',
      MAX_INFLIGHT_BATCHES: '1',
      MAX_QUEUE_PER_SHARD: '60',
      BATCH_MAX_WAIT_MS: '50',
      // This test fills the queue on purpose: the expected-wait refusal (6 s ahead) must not come first.
      MAX_QUEUE_WAIT_MS: '60000',
    });
  });
  afterAll(async () => {
    await sidecar.stop(30_000);
    await downstream.close();
  });

  /** Waits until the shard holds `items` waiting items (sidecar_queue_depth). */
  async function untilWaiting(items: number): Promise<void> {
    for (let tries = 0; tries < 200; tries++) {
      const response = await request(`${sidecar.url}/metrics`);
      const depth = /^sidecar_queue_depth\{shard="0"\} (\d+)$/m.exec(await response.body.text());
      if (depth !== null && Number(depth[1]) === items) return;
      await sleep(10);
    }
    throw new Error(`the shard never held ${items} waiting items`);
  }

  it('says 1 until a rate is measured, then ceil(waiting ÷ drain rate): ~6 s for 60 items at 10 items/s', async () => {
    const held: Promise<Answer>[] = [];
    // 10 in flight + 60 waiting fill the shard; the next one is refused.
    for (let id = 0; id < 70; id++) held.push(post(sidecar.url, { id }));
    await untilWaiting(60);
    const early = await post(sidecar.url, { id: 'early' });
    expect(early.status).toBe(503);
    expect(early.body).toMatchObject({ code: 'SIDECAR_ERR_QUEUE_FULL' });
    expect(early.headers['retry-after']).toBe('1');

    // Once the first call has ended the rate is known, and the next batch left.
    await untilWaiting(50);
    // Ten places are free again: send eleven at once, so ten fill one batch and one is refused.
    const topUp = Array.from({ length: 11 }, (_, i) => post(sidecar.url, { id: 100 + i }));
    const settled = await Promise.all(topUp.map((answer) => Promise.race([answer, sleep(200).then(() => null)])));
    const refused = settled.filter((answer): answer is Answer => answer !== null && answer.status === 503);
    held.push(...topUp.filter((_, i) => settled[i] === null));
    expect(refused).toHaveLength(1);
    const seconds = Number(refused[0].headers['retry-after']);
    expect(seconds).toBeGreaterThanOrEqual(6);
    expect(seconds).toBeLessThanOrEqual(7);

    const answers = await Promise.all(held);
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
  }, 30_000);
});
