import { describe, expect, it } from 'vitest';
import { Admission, INTERVAL_MS, requestTimeoutMs } from '../../src/http/admission.ts';
import { edgeWaitMs, parseStamp } from '../../src/http/edge-stamp.ts';

const NOW = 1_765_000_000_000; // epoch ms, December 2025

describe('edge stamp', () => {
  it("parses nginx's t=<seconds.millis>, epoch milliseconds and microseconds, with or without t=", () => {
    for (const header of ['t=1765000000.123', '1765000000.123', '1765000000123', 't=1765000000123', '1765000000123000', 't=1765000000123000']) {
      expect(parseStamp(header)).toBeCloseTo(1_765_000_000_123, 0);
    }
    expect(parseStamp('1765000000')).toBe(1_765_000_000_000);
  });

  it('parses nothing else: signs, exponents, hex, spaces, several values, an empty header', () => {
    for (const header of ['', 't=', '-1765000000', '1.765e12', '0x1a', ' 1765000000', 't=abc', '1765000000.1.2', 't= 1765000000']) {
      expect(parseStamp(header)).toBeNaN();
    }
    expect(parseStamp(undefined)).toBeNaN();
    expect(parseStamp(['1765000000', '1765000001'])).toBeNaN();
  });

  it('gives the wait since the stamp, 0 for a stamp a little ahead, and ignores one more than 1 s ahead', () => {
    expect(edgeWaitMs(String(NOW - 250), NOW)).toBe(250);
    expect(edgeWaitMs(String(NOW + 400), NOW)).toBe(0);
    expect(edgeWaitMs(String(NOW + 1_500), NOW)).toBeNaN();
    expect(edgeWaitMs('garbage', NOW)).toBeNaN();
  });
});

describe('requestTimeoutMs', () => {
  it('is x-timeout-ms below the default, else the default (a bad value counts as absent: the route answers it 400)', () => {
    expect(requestTimeoutMs('250', 10_000)).toBe(250);
    expect(requestTimeoutMs('20000', 10_000)).toBe(10_000);
    expect(requestTimeoutMs(undefined, 10_000)).toBe(10_000);
    expect(requestTimeoutMs('abc', 10_000)).toBe(10_000);
    expect(requestTimeoutMs('-5', 10_000)).toBe(10_000);
  });
});

describe('Admission (edge-wait CoDel)', () => {
  // One clock for the law and the test: judge() is told the time, the overloaded gauge reads it.
  let clock = NOW;
  class Clocked extends Admission {
    override judge(edgeMs: number, timeoutMs: number, now: number) {
      clock = now;
      return super.judge(edgeMs, timeoutMs, now);
    }
  }
  const make = (maxEdgeWaitMs = 500) => new Clocked({ header: 'x-request-start', requestTimeoutMs: 10_000, maxEdgeWaitMs, now: () => clock });

  it('answers 504 to a request whose deadline passed at the edge, overloaded or not', () => {
    const admission = make();
    expect(admission.judge(10_000, 10_000, NOW)).toBe('expired');
    expect(admission.judge(300, 250, NOW + 1)).toBe('expired');
    expect(admission.judge(200, 250, NOW + 2)).toBe('admit');
  });

  it('does not refuse for one slow request: the minimum over an interval must stand above the budget', () => {
    const admission = make();
    admission.judge(900, 10_000, NOW); // one old request...
    admission.judge(5, 10_000, NOW + 10); // ...among fresh ones
    expect(admission.judge(900, 10_000, NOW + INTERVAL_MS + 1)).toBe('admit');
    expect(admission.overloaded).toBe(false);
  });

  it('while every request of an interval waited past the budget, refuses the old ones and admits the fresh', () => {
    const admission = make();
    for (let t = 0; t <= INTERVAL_MS; t += 10) admission.judge(800, 10_000, NOW + t);
    expect(admission.overloaded).toBe(true);
    expect(admission.judge(800, 10_000, NOW + INTERVAL_MS + 20)).toBe('refuse');
    expect(admission.judge(100, 10_000, NOW + INTERVAL_MS + 30)).toBe('admit');
    expect(admission.retryAfter(NOW + 3_500)).toBe('4');
  });

  it('stops refusing once an interval sees a wait under the budget, or after an idle gap', () => {
    const admission = make();
    for (let t = 0; t <= INTERVAL_MS; t += 10) admission.judge(800, 10_000, NOW + t);
    expect(admission.overloaded).toBe(true);
    admission.judge(50, 10_000, NOW + INTERVAL_MS + 50);
    admission.judge(800, 10_000, NOW + 2 * INTERVAL_MS + 60);
    expect(admission.overloaded).toBe(false);

    const idle = make();
    for (let t = 0; t <= INTERVAL_MS; t += 10) idle.judge(800, 10_000, NOW + t);
    expect(idle.overloaded).toBe(true);
    expect(idle.judge(800, 10_000, NOW + 10 * INTERVAL_MS)).toBe('admit');
  });

  it('while a backlog stands, admits an old request that still fits MAX_QUEUE_WAIT_MS with the recent time in the sidecar', () => {
    const admission = new Clocked({ header: 'x-request-start', requestTimeoutMs: 10_000, maxEdgeWaitMs: 500, queueBudgetMs: 1_000, now: () => clock });
    for (let i = 0; i < 500; i++) admission.served(100); // answered in 100 ms
    for (let t = 0; t <= INTERVAL_MS; t += 10) admission.judge(800, 10_000, NOW + t);
    expect(admission.overloaded).toBe(true);
    expect(admission.judge(850, 10_000, NOW + INTERVAL_MS + 20)).toBe('admit'); // 850 + 100 fit in 1,000
    expect(admission.judge(950, 10_000, NOW + INTERVAL_MS + 30)).toBe('refuse');
    for (let i = 0; i < 500; i++) admission.served(900); // the sidecar itself is slow now
    expect(admission.oldestAdmittedMs).toBe(500); // never below ADMISSION_MAX_EDGE_WAIT_MS
    expect(admission.judge(600, 10_000, NOW + INTERVAL_MS + 40)).toBe('refuse');
  });

  it('with ADMISSION_MAX_EDGE_WAIT_MS=0 refuses nothing by age, and with no header judges nothing', () => {
    const off = make(0);
    for (let t = 0; t <= 3 * INTERVAL_MS; t += 10) expect(off.judge(5_000, 10_000, NOW + t)).toBe('admit');
    const handler = () => undefined;
    expect(new Admission({ header: null, requestTimeoutMs: 10_000, maxEdgeWaitMs: 500 }).guard(handler, '/process', () => true, () => undefined)).toBe(handler);
  });
});
