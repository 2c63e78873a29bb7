import { describe, expect, it } from 'vitest';
import { DrainRate } from '../../src/actors/drain-rate.ts';

describe('DrainRate', () => {
  it('knows no rate until a call has been timed', () => {
    const rate = new DrainRate();
    expect(rate.perSecond()).toBeNull();
    expect(rate.secondsFor(60)).toBeNull();
  });

  it('measures items per second of busy time: 10 items a second gives 6 s for 60 waiting', () => {
    const rate = new DrainRate();
    // Busy from t=0; one call of 10 items ends each second.
    for (let t = 1000; t <= 5000; t += 1000) rate.record(10, t, 0);
    expect(rate.perSecond()).toBeCloseTo(10, 6);
    expect(rate.secondsFor(60)).toBeCloseTo(6, 6);
  });

  it('does not count idle time before a burst as draining slowly', () => {
    const rate = new DrainRate();
    rate.record(10, 1000, 0);
    // An idle hour, then busy again from t=3_601_000.
    rate.record(10, 3_602_000, 3_601_000);
    expect(rate.perSecond()).toBeCloseTo(10, 6);
  });

  it('weighs calls that finish together by their items (pipelined calls)', () => {
    const rate = new DrainRate();
    // Eight calls of 100 items in flight, all ending at t=500, busy since t=0.
    for (let i = 0; i < 8; i++) rate.record(100, 500, 0);
    expect(rate.perSecond()).toBeCloseTo(1600, 6);
  });

  it('follows a downstream that slows down within seconds', () => {
    const rate = new DrainRate();
    for (let t = 100; t <= 10_000; t += 100) rate.record(10, t, 0); // 100 items/s
    for (let t = 11_000; t <= 30_000; t += 1000) rate.record(10, t, 0); // 10 items/s
    expect(rate.perSecond()!).toBeLessThan(15);
  });

  it('says infinitely long while calls end without draining anything (bisected batches)', () => {
    const rate = new DrainRate();
    rate.record(0, 500, 0);
    expect(rate.secondsFor(10)).toBe(Number.POSITIVE_INFINITY);
  });
});
