import { describe, expect, it } from 'vitest';
import { DrainRate } from '../../src/actors/drain-rate.ts';

describe('DrainRate', () => {
  it('knows no rate until a call has been timed', () => {
    const rate = new DrainRate();
    expect(rate.msPerCall).toBe(0);
  });

  it('measures calls per second of busy time: one call a second drains 6 waiting batches in 6 s', () => {
    const rate = new DrainRate();
    // Busy from t=0; one call ends each second.
    for (let t = 1000; t <= 5000; t += 1000) rate.record(t, 0);
    expect(rate.msPerCall).toBeCloseTo(1000, 6);
    expect((6 * rate.msPerCall) / 1000).toBeCloseTo(6, 6);
  });

  it('knows the rate from the first call', () => {
    const rate = new DrainRate();
    rate.record(1000, 0);
    expect((6 * rate.msPerCall) / 1000).toBeCloseTo(6, 6);
  });

  it('does not count idle time before a burst as draining slowly', () => {
    const rate = new DrainRate();
    rate.record(1000, 0);
    // An idle hour, then busy again from t=3_601_000.
    rate.record(3_602_000, 3_601_000);
    expect(rate.msPerCall).toBeCloseTo(1000, 6);
  });

  it('counts calls that finish together (pipelined calls)', () => {
    const rate = new DrainRate();
    // Eight calls of 1 s in flight at once, busy since t=0, ending at t=1000.
    for (let i = 0; i < 8; i++) rate.record(1000, 0);
    expect(rate.msPerCall).toBeCloseTo(125, 6);
  });

  it('follows a downstream that slows down within seconds', () => {
    const rate = new DrainRate();
    for (let t = 100; t <= 10_000; t += 100) rate.record(t, 0); // 10 calls/s
    for (let t = 11_000; t <= 30_000; t += 1000) rate.record(t, 0); // 1 call/s
    expect(rate.msPerCall).toBeGreaterThan(1000 / 1.5);
  });

  it('forgets a rate measured before an idle spell of over a second, and starts afresh at the next call', () => {
    const rate = new DrainRate();
    for (let t = 1000; t <= 5000; t += 1000) rate.record(t, 0); // 1 s a call (timeouts, say)
    expect(rate.freshMsPerCall(5_500)).toBeCloseTo(1000, 6); // busy again within a second: still the downstream now
    expect(rate.freshMsPerCall(7_000)).toBe(0); // busy again after 2 s idle: unknown until a call ends
    rate.record(7_010, 7_000); // and that call is the whole estimate
    expect(rate.freshMsPerCall(7_000)).toBeCloseTo(10, 6);
  });
});
