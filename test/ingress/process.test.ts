/**
 * INGRESS_THREADS=2 in the real process: requests for one key reach one
 * shard's single batch stream whichever thread took them. (Every other
 * contract is checked in both modes: vitest.config.ts runs the tests that
 * start the sidecar once more with INGRESS_THREADS=2.)
 */
import { describe, expect, it } from 'vitest';
import { sidecarPerTest } from '../support/sidecar-per-test.ts';
import { Agent, request } from 'undici';
import { shardForKey } from '../../src/actors/routing.ts';

const run = sidecarPerTest();

describe('two ingress threads', () => {
  it('batch one key as one stream: requests on 40 connections, taken by both threads, go out in one batch', async () => {
    const downstream = await run.downstream({ latencyMs: 5, record: true });
    const sidecar = await run.sidecar({
      DOWNSTREAM_URL: downstream.url,
      INGRESS_THREADS: '2',
      SHARD_COUNT: '4',
      // The 40th item seals the batch; the window is only a fallback, long
      // enough for all 40 to arrive on a busy machine.
      BATCH_MAX_SIZE: '40',
      BATCH_MAX_WAIT_MS: '5000',
    });
    const agents = Array.from({ length: 40 }, () => new Agent({ connections: 1 }));
    try {
      const answers = await Promise.all(
        agents.map(async (dispatcher, id) => {
          const response = await request(`${sidecar.url}/process`, {
            method: 'POST',
            dispatcher,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ key: 'alpha', id }),
          });
          return { status: response.statusCode, headers: response.headers, body: (await response.body.json()) as unknown };
        }),
      );
      answers.forEach((answer, id) => {
        expect(answer.status).toBe(200);
        expect(answer.body).toEqual({ echo: { key: 'alpha', id } });
        expect(answer.headers['x-shard']).toBe(String(shardForKey('alpha', 4)));
      });
      expect(new Set(answers.map((answer) => answer.headers['x-batch-id'])).size).toBe(1);
      expect(downstream.batches).toBe(1);
      expect(downstream.received[0].items).toHaveLength(40);
    } finally {
      await Promise.all(agents.map((agent) => agent.close()));
    }

    expect(await sidecar.stop()).toEqual({ code: 0, signal: null });
    // Each thread says how many items it handed over when it stops: both took some.
    const stopped = sidecar.logs.filter((line) => line.msg === 'ingress thread stopped');
    expect(stopped.map((line) => line.ingressThread).sort()).toEqual([0, 1]);
    for (const line of stopped) expect(line.handedOver).toBeGreaterThan(0);
    expect(stopped.reduce((sum, line) => sum + (line.handedOver as number), 0)).toBe(40);
  });
});
