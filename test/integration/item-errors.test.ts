/**
 * Per-item errors (ITEM_ERROR_FIELD) against the real process: a result that
 * carries the field fails its own caller with 422, the rest of its batch is
 * answered as usual; unset, every result passes through unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { parsePrometheus, valueOf } from '../../sim/prometheus.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';
import { request } from 'undici';

/** Five items in one batch (same key, one window); item 2 is answered `{ error: reason }`. */
async function batchWithOneRejected(url: string, reason: unknown) {
  return Promise.all(
    Array.from({ length: 5 }, (_, id) => post(url, id === 2 ? { key: 'same', id, reject: reason } : { key: 'same', id })),
  );
}

describe('ITEM_ERROR_FIELD set', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 5, rejectField: 'reject' });
    sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '30', ITEM_ERROR_FIELD: 'error' });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });

  it('answers 422 SIDECAR_ERR_ITEM_REJECTED to the rejected item alone, with the reason in message', async () => {
    downstream.reset();
    const answers = await batchWithOneRejected(sidecar.url, 'out of stock');
    expect(downstream.batches).toBe(1);
    expect(answers[2].status).toBe(422);
    expect(answers[2].body).toEqual({
      statusCode: 422,
      code: 'SIDECAR_ERR_ITEM_REJECTED',
      error: 'Unprocessable Entity',
      message: 'out of stock',
    });
    expect(answers[2].headers['x-batch-id']).toBe(answers[0].headers['x-batch-id']);
    expect(answers[2].headers['server-timing']).toMatch(/^queue;dur=/);
    for (const id of [0, 1, 3, 4]) {
      expect(answers[id].status).toBe(200);
      expect(answers[id].body).toEqual({ echo: { key: 'same', id } });
    }
  });

  it('puts a non-string value as its JSON in message, cut at 200 characters', async () => {
    const object = await batchWithOneRejected(sidecar.url, { reason: 'bad', codes: [1, 2] });
    expect(object[2].status).toBe(422);
    expect((object[2].body as { message: string }).message).toBe('{"reason":"bad","codes":[1,2]}');

    const long = await batchWithOneRejected(sidecar.url, 'x'.repeat(500));
    expect(long[2].status).toBe(422);
    expect((long[2].body as { message: string }).message).toBe('x'.repeat(200));
  });

  it('passes a result whose field is null through as a 200', async () => {
    const answers = await batchWithOneRejected(sidecar.url, null);
    expect(answers[2].status).toBe(200);
    expect(answers[2].body).toEqual({ error: null });
  });

  it('counts rejected items as outcome item_rejected', async () => {
    const response = await request(`${sidecar.url}/metrics`);
    const samples = parsePrometheus(await response.body.text());
    // One string, one object and one long reason above.
    expect(valueOf(samples, 'sidecar_requests_total', { outcome: 'item_rejected' })).toBe(3);
  });
});

describe('ITEM_ERROR_FIELD unset', () => {
  it('passes every result through unchanged', async () => {
    const downstream = await LegacyDownstream.start({ latencyMs: 5, rejectField: 'reject' });
    const sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '30' });
    try {
      const answers = await batchWithOneRejected(sidecar.url, 'out of stock');
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
      expect(answers[2].body).toEqual({ error: 'out of stock' });
    } finally {
      await sidecar.stop();
      await downstream.close();
    }
  });
});
