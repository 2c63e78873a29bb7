import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenLoop } from '../../bench/open-loop.ts';
import { SegmentLoop } from '../../bench/segment-loop.ts';

// Answers 200, 503 with retry-after, 503 without, or resets the connection, by the body's "do";
// a 200 carries one of three x-batch-id values, in turn.
let answered = 0;
const server = createServer((request, response) => {
  let body = '';
  request.on('data', (chunk: Buffer) => (body += chunk.toString()));
  request.on('end', () => {
    const what = (JSON.parse(body) as { do: string }).do;
    if (what === 'ok') response.writeHead(200, { 'x-batch-id': `b${answered++ % 3}` }).end('{}');
    else if (what === 'shed') response.writeHead(503, { 'retry-after': '1' }).end();
    else if (what === 'shed-bare') response.writeHead(503).end();
    else request.socket.destroy();
  });
});
let origin = '';

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

describe('SegmentLoop', () => {
  it('counts ok, 503 with and without retry-after and resets apart, by segment and by second', async () => {
    const bodies = ['ok', 'shed', 'shed-bare', 'reset'].map((what) => Buffer.from(JSON.stringify({ do: what })));
    const loop = new SegmentLoop({
      origin,
      path: '/',
      segments: [
        { label: 'a', rate: 40, seconds: 0.5 },
        { label: 'b', rate: 80, seconds: 0.5 },
      ],
      bodies,
      connections: 8,
      drainTimeoutMs: 2000,
    });
    await loop.start();
    const result = await loop.finish();
    const [a, b] = result.segments;
    expect(a).toMatchObject({ label: 'a', sent: 20, ok: 5, shed: 10, shedWithRetryAfter: 5, errorCount: 5, unfinished: 0 });
    expect(b).toMatchObject({ label: 'b', sent: 40, ok: 10, shed: 20, shedWithRetryAfter: 10, errorCount: 10, unfinished: 0 });
    expect(Object.keys(a!.errors).length).toBe(1);
    expect(result.seconds.reduce((n, s) => n + s.sent, 0)).toBe(60);
    expect(a!.latencyMs?.count).toBe(15);
  });
});

describe('OpenLoop (SegmentLoop at one rate)', () => {
  it('leaves the warm-up out of the figures and counts the measured answers and their batches', async () => {
    let measureStarts = 0;
    const loop = new OpenLoop({
      origin,
      path: '/',
      rate: 100,
      warmupMs: 200,
      durationMs: 300,
      bodies: [Buffer.from(JSON.stringify({ do: 'ok' }))],
      connections: 8,
      drainTimeoutMs: 2000,
      onMeasureStart: () => measureStarts++,
    });
    await loop.start();
    const result = await loop.finish();
    expect(measureStarts).toBe(1);
    expect(loop.written).toBe(50);
    expect(result).toMatchObject({ warmupRequests: 20, measuredRequests: 30, ok: 30, unfinished: 0, batches: 3, batchedItems: 30, statuses: { 200: 30 } });
    expect(result.latencyMs?.count).toBe(30);
    expect(result.windowSeconds).toBeCloseTo(0.3);
    expect(result.achievedRate).toBeGreaterThan(0);
  });
});
