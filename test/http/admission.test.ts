import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { Admission } from '../../src/http/admission.ts';

/** An Admission driven by hand: `tick(lateMs)` is one sample that fired `lateMs` after it was due. */
function manual(maxLoopDelayMs = 30, sampleMs = 10) {
  let clock = 1000;
  // Not started: no real timer, the test takes the samples.
  const admission = new Admission({ maxLoopDelayMs, sampleMs, now: () => clock });
  let last = clock;
  return {
    admission,
    tick(lateMs: number) {
      clock = last + sampleMs + lateMs;
      last = clock;
      admission.observe(clock);
    },
    advance(ms: number) {
      clock += ms;
      last = clock;
    },
  };
}

describe('admission control', () => {
  it('refuses at least the share another thread imposes, and tells that thread its own share as it changes', () => {
    let clock = 1000;
    const told: number[] = [];
    const admission = new Admission({ maxLoopDelayMs: 30, sampleMs: 10, now: () => clock, onShare: (share) => told.push(share) });
    // INGRESS_THREADS mode: the batcher thread imposes its share; this loop keeps up.
    admission.impose(0.25);
    expect(admission.share).toBe(0.25);
    const refused = Array.from({ length: 100 }, () => admission.refuse()).filter(Boolean).length;
    expect(refused).toBe(25);
    clock += 3_500;
    expect(admission.retryAfter()).toBe('4'); // the imposed overload has lasted 3.5 s
    admission.impose(0);
    expect(Array.from({ length: 100 }, () => admission.refuse()).some(Boolean)).toBe(false);
    // Its own share rises under its own late samples and is told at each change.
    let last = clock;
    for (let i = 0; i < 4; i++) {
      clock = last + 10 + 200;
      last = clock;
      admission.observe(clock);
    }
    expect(admission.shedShare).toBeGreaterThan(0);
    expect(told.length).toBeGreaterThan(0);
    expect(told.at(-1)).toBe(admission.shedShare);
  });

  it('refuses nothing while the loop keeps up, nor for one GC-sized pause', () => {
    const { admission, tick } = manual(30);
    for (let i = 0; i < 100; i++) tick(1);
    expect(admission.shedShare).toBe(0);
    tick(40); // a 40 ms scavenge: the smoothed delay stays under 30 ms
    for (let i = 0; i < 5; i++) tick(0);
    expect(admission.shedShare).toBe(0);
    tick(400); // one wave of requests arriving at once: one very late sample
    expect(admission.delayMs).toBeGreaterThan(30);
    tick(5);
    expect(admission.shedShare).toBe(0);
    expect(admission.refuse()).toBe(false);
  });

  it('raises the refused share while the loop stays late, and lets it go once the loop keeps up again', () => {
    const { admission, tick } = manual(30);
    for (let i = 0; i < 6; i++) tick(150);
    expect(admission.delayMs).toBeGreaterThan(30);
    expect(admission.shedShare).toBe(0.5); // never more than half
    const peak = admission.shedShare;
    for (let i = 0; i < 3; i++) tick(40); // still above the limit: holds or rises
    expect(admission.shedShare).toBeGreaterThanOrEqual(peak);
    for (let i = 0; i < 60; i++) tick(0);
    expect(admission.shedShare).toBe(0);
  });

  it('spreads refusals evenly at the current share', () => {
    const { admission } = manual(30);
    admission.shedShare = 0.4;
    const refused = Array.from({ length: 100 }, () => admission.refuse()).filter(Boolean).length;
    expect(refused).toBe(40);
  });

  it('tells refused callers to stay away as long as the overload has lasted, 1 to 60 s', () => {
    const { admission, tick, advance } = manual(30);
    for (let i = 0; i < 4; i++) tick(150);
    expect(admission.retryAfter()).toBe('1');
    advance(4_200);
    expect(admission.retryAfter()).toBe('5');
    advance(120_000);
    expect(admission.retryAfter()).toBe('60');
  });

  it('is off with ADMISSION_MAX_LOOP_DELAY_MS=0: the listener is Fastify\'s own', () => {
    const admission = new Admission({ maxLoopDelayMs: 0, sampleMs: 10 });
    const handler = () => undefined;
    expect(admission.guard(handler, '/process', () => true, () => undefined)).toBe(handler);
  });

  describe('in front of a server', () => {
    const admission = new Admission({ maxLoopDelayMs: 30, sampleMs: 10 });
    let server: Server;
    let origin: string;
    let refusedCount = 0;
    let accepting = true;
    beforeAll(async () => {
      const handler = admission.guard(
        (_request, response) => response.end('served'),
        '/process',
        () => accepting,
        () => refusedCount++,
      );
      server = createServer(handler);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('answers a refused POST /process with the prepared 503, body unread, and keeps the connection', async () => {
      admission.shedShare = 1;
      const body = JSON.stringify({ key: 'k', pad: 'x'.repeat(100_000) });
      for (let i = 0; i < 3; i++) {
        const response = await request(`${origin}/process`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        expect(response.statusCode).toBe(503);
        expect(response.headers['retry-after']).toBe('1');
        expect(response.headers.connection).not.toBe('close');
        expect(await response.body.json()).toEqual({
          statusCode: 503,
          code: 'SIDECAR_ERR_OVERLOADED',
          error: 'Service Unavailable',
          message: 'The sidecar is overloaded (event loop saturated); retry later',
        });
      }
      expect(refusedCount).toBe(3);
    });

    it('never refuses probes, metrics, other methods, or work while draining (that answer is the route\'s own)', async () => {
      admission.shedShare = 1;
      for (const [method, path] of [['GET', '/healthz'], ['GET', '/metrics'], ['GET', '/process'], ['POST', '/processes']] as const) {
        const response = await request(`${origin}${path}`, { method });
        expect(await response.body.text()).toBe('served');
      }
      accepting = false;
      const response = await request(`${origin}/process?x=1`, { method: 'POST', body: '{}' });
      expect(await response.body.text()).toBe('served');
      accepting = true;
      const refused = await request(`${origin}/process?x=1`, { method: 'POST', body: '{}' });
      expect(refused.statusCode).toBe(503);
      await refused.body.dump();
    });
  });
});
