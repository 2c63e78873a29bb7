/**
 * Batching behaviour of the real sidecar process against the real simulated
 * downstream, over real HTTP. Timing assertions are loose on purpose: the
 * machine is a busy 2-core box; exact trigger timing is covered by the actor
 * unit tests with fake timers.
 */
import { describe, expect, it } from 'vitest';
import { sidecarPerTest } from '../support/sidecar-per-test.ts';
import { shardForKey } from '../../src/actors/routing.ts';
import { post } from '../support/http.ts';

const run = sidecarPerTest();

async function start(env: Record<string, string>, latencyMs = 5) {
  const downstream = await run.downstream({ latencyMs, record: true });
  const sidecar = await run.sidecar({ DOWNSTREAM_URL: downstream.url, ...env });
  return { downstream, sidecar };
}

describe('batching', () => {
  it('answers 2,000 concurrent requests each with exactly its own result, in batches of at most BATCH_MAX_SIZE', async () => {
    const { downstream, sidecar } = await start({ SHARD_COUNT: '4', BATCH_MAX_SIZE: '100' });
    const answers = await Promise.all(
      Array.from({ length: 2000 }, (_, id) => post(sidecar.url, { key: `user-${id % 97}`, id, payload: `p${id}` })),
    );
    answers.forEach((answer, id) => {
      expect(answer.status, `item ${id}: ${JSON.stringify(answer.body)} retry-after ${answer.headers['retry-after']}`).toBe(200);
      expect(answer.body).toEqual({ echo: { key: `user-${id % 97}`, id, payload: `p${id}` } });
    });
    expect(downstream.items).toBe(2000);
    expect(Math.max(...downstream.received.map((batch) => batch.items.length))).toBeLessThanOrEqual(100);
    expect(downstream.batches).toBeLessThan(2000 / 2);
    // x-batch-id of an answer names the batch that carried it.
    const byId = new Map(downstream.received.map((batch) => [batch.batchId, batch]));
    for (const [id, answer] of answers.entries()) {
      const batch = byId.get(answer.headers['x-batch-id'] as string);
      expect(batch?.items).toContainEqual({ key: `user-${id % 97}`, id, payload: `p${id}` });
      expect(answer.headers['x-shard']).toBe(batch?.shard);
    }
  });

  it('dispatches a full batch at once, without waiting for the window', async () => {
    const { downstream, sidecar } = await start({ SHARD_COUNT: '1', BATCH_MAX_SIZE: '5', BATCH_MAX_WAIT_MS: '5000' });
    const answers = await Promise.all(Array.from({ length: 5 }, (_, id) => post(sidecar.url, { id })));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    expect(Math.max(...answers.map((answer) => answer.ms))).toBeLessThan(2500);
    expect(downstream.received.map((batch) => batch.items.length)).toEqual([5]);
  });

  it('sends a lone item once BATCH_MAX_WAIT_MS have passed since it arrived', async () => {
    const { downstream, sidecar } = await start({ SHARD_COUNT: '1', BATCH_MAX_WAIT_MS: '400' });
    const answer = await post(sidecar.url, { id: 1 });
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeGreaterThanOrEqual(395);
    expect(answer.ms).toBeLessThan(2400);
    expect(downstream.received.map((batch) => batch.items)).toEqual([[{ id: 1 }]]);
  });

  it('adds an item arriving mid-window to that batch', async () => {
    const { downstream, sidecar } = await start({ SHARD_COUNT: '1', BATCH_MAX_WAIT_MS: '600' });
    const first = post(sidecar.url, { id: 1 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = post(sidecar.url, { id: 2 });
    const [a, b] = await Promise.all([first, second]);
    expect(a.headers['x-batch-id']).toBe(b.headers['x-batch-id']);
    expect(downstream.received.map((batch) => batch.items)).toEqual([[{ id: 1 }, { id: 2 }]]);
    // The window counts from the first item: the second waits less than a full window.
    expect(b.ms).toBeLessThan(a.ms);
  });

  it('routes a key to murmurhash3(key) mod SHARD_COUNT, the same shard every time', async () => {
    const { sidecar } = await start({ SHARD_COUNT: '7', BATCH_MAX_WAIT_MS: '1' });
    const keys = ['alpha', 'beta', 'gamma', 'δέλτα', '🔑', '', '42', 'a-much-longer-key-with-more-bytes-in-it'];
    for (const key of keys) {
      const answers = await Promise.all([post(sidecar.url, { key }), post(sidecar.url, { key, other: 1 })]);
      for (const answer of answers) expect(answer.headers['x-shard']).toBe(String(shardForKey(key, 7)));
    }
    // A number is hashed as its decimal string.
    const numeric = await post(sidecar.url, { key: 42 });
    expect(numeric.headers['x-shard']).toBe(String(shardForKey('42', 7)));
  });

  it('lets the x-shard-key header override the body field, and SHARD_KEY_FIELD choose the field', async () => {
    const { sidecar } = await start({ SHARD_COUNT: '16', BATCH_MAX_WAIT_MS: '1', SHARD_KEY_FIELD: 'tenant' });
    for (let i = 0; i < 10; i++) {
      const byHeader = await post(sidecar.url, { tenant: `t${i}` }, { 'x-shard-key': `h${i}` });
      expect(byHeader.headers['x-shard']).toBe(String(shardForKey(`h${i}`, 16)));
      const byField = await post(sidecar.url, { tenant: `t${i}`, key: 'ignored' });
      expect(byField.headers['x-shard']).toBe(String(shardForKey(`t${i}`, 16)));
    }
  });

  it('keeps exactly MAX_INFLIGHT_BATCHES calls in flight per shard with a slow downstream, and keeps collecting', async () => {
    const { downstream, sidecar } = await start(
      { SHARD_COUNT: '1', BATCH_MAX_SIZE: '2', MAX_INFLIGHT_BATCHES: '3', BATCH_MAX_WAIT_MS: '5' },
      300,
    );
    const answers = await Promise.all(Array.from({ length: 24 }, (_, id) => post(sidecar.url, { id })));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect(downstream.maxInflightByShard.get('0')).toBe(3);
    expect(downstream.items).toBe(24);
  });

  it('answers 503 with retry-after at once when the shard queue is full, and serves the accepted ones', async () => {
    const { downstream, sidecar } = await start({
      SHARD_COUNT: '1',
      MAX_QUEUE_PER_SHARD: '5',
      BATCH_MAX_WAIT_MS: '1500',
    });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, id) => post(sidecar.url, { id })));
    const refused = answers.filter((answer) => answer.status === 503);
    const served = answers.filter((answer) => answer.status === 200);
    expect(refused).toHaveLength(3);
    expect(served).toHaveLength(5);
    for (const answer of refused) {
      expect(answer.headers['retry-after']).toBeDefined();
      expect(answer.body).toMatchObject({ statusCode: 503, code: 'SIDECAR_ERR_QUEUE_FULL', error: 'Service Unavailable' });
      expect(answer.ms).toBeLessThan(1000);
    }
    for (const answer of served) expect(answer.ms).toBeGreaterThan(1000);
    expect(downstream.items).toBe(5);
  });
});

describe('x-shard-key with non-ASCII bytes', () => {
  it('hashes the header bytes as sent (UTF-8), not Node\'s latin1 reading of them, and measures them against 256 bytes', async () => {
    const { connect } = await import('node:net');
    const { sidecar } = await start({ SHARD_COUNT: '7', BATCH_MAX_WAIT_MS: '1' });
    const { hostname, port } = new URL(sidecar.url);
    const send = (key: string) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), hostname);
        let response = '';
        socket.on('data', (chunk) => (response += chunk.toString('latin1')));
        socket.on('close', () => resolve(response));
        const head = Buffer.concat([
          Buffer.from('POST /process HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\nx-shard-key: '),
          Buffer.from(key, 'utf8'),
          Buffer.from('\r\n\r\n{}'),
        ]);
        socket.write(head);
      });
    for (const key of ['é', 'é'.repeat(100), 'ключ', '🔑']) {
      const response = await send(key);
      expect(response).toMatch(/^HTTP\/1\.1 200/);
      expect(/x-shard: (\d+)/.exec(response)?.[1]).toBe(String(shardForKey(key, 7)));
    }
    expect(await send('é'.repeat(129))).toMatch(/^HTTP\/1\.1 400/); // 258 bytes
  });
});
