/**
 * Poison-batch isolation (ISOLATE_FAILED_BATCHES) against the real process: a
 * batch the downstream fails because of one item is bisected down to that
 * item, which alone gets the 502; everyone else gets their result. Connection
 * errors and timeouts are not bisected, deadlines and MAX_INFLIGHT_BATCHES
 * hold, and with the option off a failed batch fails all its callers after
 * one call.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';
import { OtlpReceiver } from '../support/otlp-receiver.ts';

/** 16 items on one shard in one batch; item `poisoned` (if any) makes any batch holding it fail. */
function sixteen(url: string, poisoned: number | null, headers: Record<string, string> = {}) {
  return Promise.all(
    Array.from({ length: 16 }, (_, id) => post(url, id === poisoned ? { id, poison: true } : { id }, headers)),
  );
}

const ISOLATING = {
  SHARD_COUNT: '1',
  BATCH_MAX_SIZE: '16',
  BATCH_MAX_WAIT_MS: '50',
  MAX_INFLIGHT_BATCHES: '2',
  DOWNSTREAM_TIMEOUT_MS: '300',
  ISOLATE_FAILED_BATCHES: 'true',
};

describe('ISOLATE_FAILED_BATCHES=true', () => {
  let downstream: LegacyDownstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 10, poisonField: 'poison', record: true });
    sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, ...ISOLATING });
  });
  afterAll(async () => {
    await sidecar.stop();
    await downstream.close();
  });
  beforeEach(() => {
    downstream.set({ behaviour: 'ok', latencyMs: 10 });
    downstream.reset();
  });

  it('bisects 16 items with one poisoned one in 1 + 2·log2(16) calls: only that one gets 502', async () => {
    const answers = await sixteen(sidecar.url, 11);
    expect(downstream.batches).toBe(9);
    // One call of 16, then two of each half size: 8, 4, 2, 1.
    expect([16, 8, 4, 2, 1].map((size) => downstream.sizes[size])).toEqual([1, 2, 2, 2, 2]);
    for (const [id, answer] of answers.entries()) {
      if (id === 11) {
        expect(answer.status).toBe(502);
        expect(answer.body).toMatchObject({ code: 'SIDECAR_ERR_DOWNSTREAM_STATUS' });
      } else {
        expect(answer.status).toBe(200);
        expect(answer.body).toEqual({ echo: { id } });
      }
    }
    // Each sub-batch has its own id, and the answers name the call that carried them.
    const ids = downstream.received.map((batch) => batch.batchId);
    expect(new Set(ids).size).toBe(9);
    for (const answer of answers) expect(ids).toContain(answer.headers['x-batch-id']);
    expect(answers[11].headers['x-batch-id']).toMatch(/(\.[12]){4}$/);
    // Never more calls at once than MAX_INFLIGHT_BATCHES.
    expect(downstream.maxInflightByShard.get('0')).toBeLessThanOrEqual(2);
  });

  it('answers an unpoisoned batch in one call', async () => {
    const answers = await sixteen(sidecar.url, null);
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect(downstream.batches).toBe(1);
  });

  it('does not bisect a connection error: one call, 502 for all', async () => {
    downstream.set({ behaviour: 'reset' });
    const answers = await sixteen(sidecar.url, null);
    expect(answers.every((answer) => answer.status === 502)).toBe(true);
    expect(answers[0].body).toMatchObject({ code: 'SIDECAR_ERR_DOWNSTREAM_UNREACHABLE' });
    expect(downstream.batches).toBe(1);
  });

  it('does not bisect a timeout: one call, 504 for all', async () => {
    downstream.set({ behaviour: 'hang' });
    const answers = await sixteen(sidecar.url, null);
    expect(answers.every((answer) => answer.status === 504)).toBe(true);
    expect(answers[0].body).toMatchObject({ code: 'SIDECAR_ERR_DOWNSTREAM_TIMEOUT' });
    expect(downstream.batches).toBe(1);
  });

  it('bisects a body that fails the checks too', async () => {
    downstream.set({ behaviour: 'wrong-length' });
    const answers = await Promise.all([1, 2].map((id) => post(sidecar.url, { id })));
    // Every call fails: the two items end up alone, each with its own 502.
    expect(answers.map((answer) => answer.status)).toEqual([502, 502]);
    expect(answers[0].body).toMatchObject({ code: 'SIDECAR_ERR_DOWNSTREAM_BAD_BODY' });
    expect(downstream.batches).toBe(3);
  });

  it('never resends past the items\' deadlines', async () => {
    downstream.set({ latencyMs: 100 });
    const started = performance.now();
    // Calls end at ~150, ~250, ~350 ms: a 280 ms deadline leaves room for two rounds, not four.
    const answers = await sixteen(sidecar.url, 3, { 'x-timeout-ms': '280' });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(280 + 250);
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 504).length).toBeGreaterThan(0);
    expect(statuses.every((status) => status === 200 || status === 504)).toBe(true);
    const calls = downstream.batches;
    expect(calls).toBeLessThan(9);
    await sleep(400);
    expect(downstream.batches).toBe(calls);
  });
});

describe('ISOLATE_FAILED_BATCHES off (default)', () => {
  it('fails every caller of a failed batch with 502 after one call', async () => {
    const downstream = await LegacyDownstream.start({ latencyMs: 5, poisonField: 'poison' });
    const sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, ...ISOLATING, ISOLATE_FAILED_BATCHES: 'false' });
    try {
      const answers = await sixteen(sidecar.url, 11);
      expect(answers.every((answer) => answer.status === 502)).toBe(true);
      expect(downstream.batches).toBe(1);
    } finally {
      await sidecar.stop();
      await downstream.close();
    }
  });
});

describe('bisection spans', () => {
  let receiver: OtlpReceiver | undefined;
  let downstream: LegacyDownstream | undefined;
  let sidecar: SidecarProcess | undefined;
  afterEach(async () => {
    await sidecar?.stop();
    await downstream?.close();
    await receiver?.close();
  });

  it('makes each extra call a batch.dispatch span linked to its parent batch span, with batch.bisect_depth', async () => {
    receiver = await OtlpReceiver.start();
    downstream = await LegacyDownstream.start({ latencyMs: 5, poisonField: 'poison' });
    sidecar = await startSidecar({
      DOWNSTREAM_URL: downstream.url,
      ...ISOLATING,
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_TRACES_SAMPLER: 'always_off',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    await sixteen(sidecar.url, 5);
    expect((await sidecar.stop()).code).toBe(0);
    const spans = receiver.named('batch.dispatch');
    expect(spans).toHaveLength(9);
    const byId = new Map(spans.map((span) => [span.attributes['batch.id'], span]));
    const root = spans.find((span) => span.attributes['batch.bisect_depth'] === undefined)!;
    expect(root.attributes['batch.size']).toBe(16);
    for (const span of spans) {
      if (span === root) continue;
      const id = String(span.attributes['batch.id']);
      const parent = byId.get(id.slice(0, -2))!;
      expect(parent).toBeDefined();
      expect(span.attributes['batch.bisect_depth']).toBe(id.split('.').length - 1);
      expect(span.links).toContainEqual({ traceId: parent.traceId, spanId: parent.spanId });
    }
  });
});
