/**
 * Downstream failures and bad input against the real process: each failure
 * reaches only the callers of the batch it hit, with the right status, and the
 * service keeps serving afterwards.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { shardForKey } from '../../src/actors/routing.ts';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { request } from 'undici';
import { agent, get, post } from '../support/http.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';

/** Two keys that land on shard 0 and shard 1 of 2. */
const KEY_ON = [0, 1].map((shard) => {
  for (let i = 0; ; i++) if (shardForKey(`k${i}`, 2) === shard) return `k${i}`;
});

describe('downstream failures', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 5 });
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      SHARD_COUNT: '2',
      BATCH_MAX_WAIT_MS: '20',
      DOWNSTREAM_TIMEOUT_MS: '400',
    });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });
  beforeEach(() => downstream.set({ behaviour: 'ok', faultShard: null }));

  async function burstOnBothShards() {
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, id) => post(sidecar.url, { key: KEY_ON[id % 2], id })),
    );
    return { faulty: answers.filter((_, id) => id % 2 === 0), healthy: answers.filter((_, id) => id % 2 === 1) };
  }

  it.each([
    ['status-500', 'SIDECAR_ERR_DOWNSTREAM_STATUS'],
    ['wrong-length', 'SIDECAR_ERR_DOWNSTREAM_BAD_BODY'],
    ['not-json', 'SIDECAR_ERR_DOWNSTREAM_BAD_BODY'],
    ['not-array', 'SIDECAR_ERR_DOWNSTREAM_BAD_BODY'],
    ['reset', 'SIDECAR_ERR_DOWNSTREAM_UNREACHABLE'],
  ] as const)('answers 502 to the callers of a batch the downstream answered with %s, and to no one else', async (behaviour, code) => {
    downstream.set({ behaviour, faultShard: '0' });
    const { faulty, healthy } = await burstOnBothShards();
    for (const answer of faulty) {
      expect(answer.status).toBe(502);
      expect(answer.body).toMatchObject({ statusCode: 502, code, error: 'Bad Gateway' });
      expect(answer.headers['x-shard']).toBe('0');
    }
    for (const answer of healthy) expect(answer.status).toBe(200);
    downstream.set({ behaviour: 'ok', faultShard: null });
    expect((await post(sidecar.url, { key: KEY_ON[0], after: true })).body).toEqual({ echo: { key: KEY_ON[0], after: true } });
  });

  it('answers 504 when the downstream call runs past DOWNSTREAM_TIMEOUT_MS, then keeps serving', async () => {
    downstream.set({ behaviour: 'hang', faultShard: '0' });
    const { faulty, healthy } = await burstOnBothShards();
    for (const answer of faulty) {
      expect(answer.status).toBe(504);
      expect(answer.body).toMatchObject({ code: 'SIDECAR_ERR_DOWNSTREAM_TIMEOUT' });
    }
    for (const answer of healthy) expect(answer.status).toBe(200);
    downstream.set({ behaviour: 'ok', faultShard: null });
    expect((await post(sidecar.url, { key: KEY_ON[0] })).status).toBe(200);
  });

  it('answers 504 when the x-timeout-ms deadline passes first', async () => {
    downstream.set({ behaviour: 'hang' });
    const answer = await post(sidecar.url, { id: 1 }, { 'x-timeout-ms': '100' });
    expect(answer.status).toBe(504);
    expect(answer.body).toMatchObject({ code: 'SIDECAR_ERR_DEADLINE_EXCEEDED' });
    expect(answer.ms).toBeLessThan(390);
  });
});

describe('unreachable downstream', () => {
  it('answers 502 when the connection is refused, and stays healthy', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const sidecar = await startSidecar({ DOWNSTREAM_URL: `http://127.0.0.1:${port}/batch`, BATCH_MAX_WAIT_MS: '1' });
    try {
      const answers = await Promise.all([1, 2, 3].map((id) => post(sidecar.url, { id })));
      for (const answer of answers) {
        expect(answer.status).toBe(502);
        expect(answer.body).toMatchObject({ code: 'SIDECAR_ERR_DOWNSTREAM_UNREACHABLE' });
      }
      expect((await get(`${sidecar.url}/healthz`)).status).toBe(200);
    } finally {
      expect((await sidecar.stop()).code).toBe(0);
    }
  });

  it('retries connection errors with DOWNSTREAM_RETRIES until the downstream comes back', async () => {
    const downstream = await LegacyDownstream.start({ latencyMs: 1, behaviour: 'reset' });
    const sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '1', DOWNSTREAM_RETRIES: '6' });
    try {
      setTimeout(() => downstream.set({ behaviour: 'ok' }), 150);
      const answer = await post(sidecar.url, { id: 7 });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ echo: { id: 7 } });
      expect(downstream.batches).toBeGreaterThan(1);
    } finally {
      await sidecar.stop();
      await downstream.close();
    }
  });
});

describe('bad input', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 1, record: true });
    sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '2', MAX_BODY_BYTES: '1024' });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });

  it.each([
    ['malformed JSON', '{"id": 1', {}, 400, 'FST_ERR_CTP_INVALID_JSON_BODY'],
    ['an empty body', '', {}, 400, 'FST_ERR_CTP_EMPTY_JSON_BODY'],
    ['a non-JSON content-type', 'id=1', { 'content-type': 'text/plain' }, 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE'],
    ['a body over MAX_BODY_BYTES', JSON.stringify({ pad: 'x'.repeat(2000) }), {}, 413, 'FST_ERR_CTP_BODY_TOO_LARGE'],
    ['a key over 256 bytes', JSON.stringify({ key: 'k'.repeat(257) }), {}, 400, 'SIDECAR_ERR_KEY_TOO_LONG'],
    ['a header key over 256 bytes', '{}', { 'x-shard-key': 'h'.repeat(257) }, 400, 'SIDECAR_ERR_KEY_TOO_LONG'],
    ['a bad x-timeout-ms', '{}', { 'x-timeout-ms': 'soon' }, 400, 'SIDECAR_ERR_INVALID_TIMEOUT'],
  ])('refuses %s with the right status and code, and leaves the service healthy', async (_name, body, headers, status, code) => {
    const concurrent = post(sidecar.url, { id: 'neighbour' });
    const answer = await post(sidecar.url, body, headers as Record<string, string>, true);
    expect(answer.status).toBe(status);
    expect(answer.body).toMatchObject({ statusCode: status, code });
    expect((await concurrent).body).toEqual({ echo: { id: 'neighbour' } });
    expect((await post(sidecar.url, { id: 'after' })).status).toBe(200);
  });

  it('refuses a POST with neither body nor content-type (415) and keeps the shard serving', async () => {
    const neighbour = post(sidecar.url, { id: 'before' });
    const response = await request(`${sidecar.url}/process`, { method: 'POST', dispatcher: agent });
    expect(response.statusCode).toBe(415);
    expect(await response.body.json()).toMatchObject({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' });
    expect((await neighbour).status).toBe(200);
    const after = await Promise.all([1, 2, 3].map((id) => post(sidecar.url, { id }, { 'x-timeout-ms': '2000' })));
    expect(after.map((answer) => answer.status)).toEqual([200, 200, 200]);
  });

  it('forwards any JSON value as the exact bytes the caller sent', async () => {
    for (const raw of ['42', '"text"', 'null', '[1,2]', '{ "spaced" :  true }', '{"n":1.50,"u":"\\u00e9"}']) {
      const answer = await post(sidecar.url, raw, {}, true);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ echo: JSON.parse(raw) });
      const batch = downstream.received.find((received) => received.batchId === answer.headers['x-batch-id']);
      expect(batch?.body).toBe(`[${raw}]`);
    }
  });
});
