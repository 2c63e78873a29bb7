import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGenerator, runGenerators, type GeneratorEvent } from '../../bench/kit/generator.ts';
import { OpenLoop } from '../../bench/kit/open-loop.ts';

// Answers 200, 503 with retry-after, 503 without, or resets the connection, by the body's "do".
const server = createServer((request, response) => {
  let body = '';
  request.on('data', (chunk: Buffer) => (body += chunk.toString()));
  request.on('end', () => {
    const what = (JSON.parse(body) as { do: string }).do;
    if (what === 'ok') response.writeHead(200).end('{}');
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

describe('bench/kit/open-loop.ts', () => {
  it('counts ok, 503 with and without retry-after and resets apart, by segment and by second', async () => {
    const bodies = ['ok', 'shed', 'shed-bare', 'reset'].map((what) => Buffer.from(JSON.stringify({ do: what })));
    const loop = new OpenLoop({
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

describe('bench/kit/generator.ts, in its own process', () => {
  const ok = [JSON.stringify({ do: 'ok' })];
  const segments = [
    { label: 'warmup', rate: 100, seconds: 0.2 },
    { label: 'measure', rate: 100, seconds: 0.3 },
  ];

  it('runs an open-loop schedule over two processes: the first one tells each segment and the last send, the figures add up', async () => {
    const events: GeneratorEvent[] = [];
    const result = await runGenerators(2, { mode: 'open', origin, path: '/', connections: 8, bodies: ok, segments, drainS: 2 }, (e) => events.push(e));
    expect(events.map((e) => `${e.event}${e.index ?? ''}`)).toEqual(['segment0', 'segment1', 'sent']);
    expect(result.requests).toEqual({ total: 50, sent: 50, written: 50 });
    expect(result.segments.map((s) => [s.label, s.rate, s.sent, s.ok, s.okInTime])).toEqual([['warmup', 100, 20, 20, 20], ['measure', 100, 30, 30, 30]]);
    expect(result.cpu.windowSeconds).toBeGreaterThan(0.2);
  });

  it('runs autocannon in closed mode', async () => {
    const events: string[] = [];
    const result = await runGenerator({ mode: 'closed', origin, path: '/', connections: 4, bodies: ok, seconds: 0.5 }, (e) => events.push(e.event));
    expect(events).toEqual(['start', 'sent']);
    expect(result.closed.ok).toBeGreaterThan(0);
    expect(result.closed.non2xx).toBe(0);
  });
});
