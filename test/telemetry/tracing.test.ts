/**
 * Traces from the real process to a real OTLP/HTTP receiver: one
 * `batch.dispatch` span per downstream call with its attributes and links to
 * the sampled request spans, the batch's `traceparent` on the downstream call,
 * and spans flushed before the process exits.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess } from '../../sim/sidecar-process.ts';
import { post } from '../support/http.ts';
import { OtlpReceiver } from '../support/otlp-receiver.ts';

let downstream: LegacyDownstream | undefined;
let receiver: OtlpReceiver | undefined;
let sidecar: SidecarProcess | undefined;

afterEach(async () => {
  await sidecar?.stop();
  await downstream?.close();
  await receiver?.close();
  sidecar = downstream = receiver = undefined;
});

async function start(env: Record<string, string>) {
  receiver = await OtlpReceiver.start();
  downstream = await LegacyDownstream.start({ latencyMs: 5, record: true });
  sidecar = await startSidecar({
    DOWNSTREAM_URL: downstream.url,
    SHARD_COUNT: '2',
    BATCH_MAX_WAIT_MS: '50',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_SERVICE_NAME: 'sidecar-under-test',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    ...env,
  });
  return { receiver, downstream, sidecar };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

describe('tracing', () => {
  it('exports a batch.dispatch span per batch with its attributes, linked to the sampled request spans', async () => {
    const { receiver, downstream, sidecar } = await start({ OTEL_TRACES_SAMPLER: 'always_on' });
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, id) =>
        post(sidecar.url, { key: `k${id}`, id }, id === 0 ? { traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` } : {}),
      ),
    );
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect((await sidecar.stop()).code).toBe(0); // the shutdown flushes the spans

    const batchSpans = receiver.named('batch.dispatch');
    const requestSpans = receiver.named('POST /process');
    expect(batchSpans).toHaveLength(downstream.batches);
    expect(requestSpans).toHaveLength(12);
    expect(new Set(receiver.spans.map((span) => span.service))).toEqual(new Set(['sidecar-under-test']));

    for (const span of batchSpans) {
      const received = downstream.received.find((batch) => batch.batchId === span.attributes['batch.id']);
      expect(received).toBeDefined();
      expect(span.attributes).toMatchObject({
        'batch.size': received!.items.length,
        'batch.shard': Number(received!.shard),
        'batch.trigger': 'time',
        'http.response.status_code': 200,
      });
      // The downstream call carried this span's context.
      const [, traceId, spanId] = TRACEPARENT.exec(received!.traceparent ?? '') ?? [];
      expect([traceId, spanId]).toEqual([span.traceId, span.spanId]);
      expect(span.links).toHaveLength(received!.items.length);
    }
    // Every request span is linked from exactly one batch span.
    const linked = batchSpans.flatMap((span) => span.links.map((link) => link.spanId)).sort();
    expect(linked).toEqual(requestSpans.map((span) => span.spanId).sort());
    // The caller's traceparent is honoured: its request span continues the caller's trace.
    const answerToTraced = answers[0];
    expect(answerToTraced.status).toBe(200);
    expect(requestSpans.filter((span) => span.traceId === callerTrace)).toHaveLength(1);
    expect(requestSpans.find((span) => span.traceId === callerTrace)?.parentSpanId).toBe('00f067aa0ba902b7');
  });

  it('records every batch span while request spans are sampled out, and marks failed batches as errors', async () => {
    const { receiver, downstream, sidecar } = await start({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' });
    downstream.set({ behaviour: 'status-500' });
    const answers = await Promise.all(Array.from({ length: 6 }, (_, id) => post(sidecar.url, { id })));
    expect(answers.every((answer) => answer.status === 502)).toBe(true);
    expect((await sidecar.stop()).code).toBe(0);

    expect(receiver.named('POST /process')).toHaveLength(0);
    const batchSpans = receiver.named('batch.dispatch');
    expect(batchSpans).toHaveLength(downstream.batches);
    for (const span of batchSpans) {
      expect(span.links).toEqual([]);
      expect(span.attributes['http.response.status_code']).toBe(500);
      expect(span.attributes['error.type']).toBe('SIDECAR_ERR_DOWNSTREAM_STATUS');
      expect(span.status.code).toBe(2); // ERROR
    }
  });

  it('ends each request span with its answer: the status, a refusal before the handler, a caller gone first', async () => {
    const { receiver, downstream, sidecar } = await start({ OTEL_TRACES_SAMPLER: 'always_on' });
    expect((await post(sidecar.url, { id: 1 })).status).toBe(200);
    expect((await post(sidecar.url, '{"id":', {}, true)).status).toBe(400);
    downstream.set({ latencyMs: 1_000 });
    const gone = new AbortController();
    const abandoned = request(`${sidecar.url}/process`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 3 }),
      signal: gone.signal,
    }).catch((error: unknown) => error);
    // Abort once its batch has reached the downstream (the first request was
    // batch 1): accepted, batched, its downstream call under way. Polled, not
    // a fixed sleep, so a busy machine cannot abort it before it arrives.
    while (downstream.batches < 2) await sleep(10);
    gone.abort();
    await abandoned;
    expect((await sidecar.stop()).code).toBe(0);

    const spans = receiver.named('POST /process');
    expect(spans).toHaveLength(3);
    const statuses = spans.map((span) => span.attributes['http.response.status_code']);
    expect(statuses.filter((status) => status !== undefined).sort()).toEqual([200, 400]);
    expect(spans.filter((span) => span.attributes['http.request.aborted'] === true)).toHaveLength(1);
  });

  it('follows the caller: a sampled traceparent gets a request span at ratio 0, an unsampled or absent one none', async () => {
    const { receiver, sidecar } = await start({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' });
    const caller = (flags: string) => ({ traceparent: `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-${flags}` });
    const answers = await Promise.all([
      post(sidecar.url, { id: 1 }, caller('01')),
      post(sidecar.url, { id: 2 }, caller('00')),
      post(sidecar.url, { id: 3 }),
      post(sidecar.url, { id: 4 }, { traceparent: 'not a traceparent' }),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    expect((await sidecar.stop()).code).toBe(0);
    const spans = receiver.named('POST /process');
    expect(spans).toHaveLength(1);
    expect(spans[0].parentSpanId).toBe('00f067aa0ba902b7');
  });

  it('is off without an exporter: no traceparent goes downstream', async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 1, record: true });
    sidecar = await startSidecar({ DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '1' });
    expect((await post(sidecar.url, { id: 1 })).status).toBe(200);
    expect(downstream.received[0].traceparent).toBeUndefined();
    expect(sidecar.logs.some((entry) => entry.msg === 'tracing off: no exporter configured')).toBe(true);
  });
});
