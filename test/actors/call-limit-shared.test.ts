import { describe, expect, it } from 'vitest';
import { runShared } from '../support/shared-downstream.ts';

/**
 * Two sidecars in front of one downstream of 4 workers, 1,500 items/s each
 * (the bench's "two" run: 3,000 of 4,000 items/s), event by event. Each needs
 * two calls in flight; held at one, it refuses about a third of its items.
 * One call in seven reads 1.3-1.6× slow: the noise of the 2-core bench box,
 * where about one bench pair in three ended with shares of calls 0.38-0.68
 * before the law's sharing rules (ADR 0018). Seeded: the same runs each time.
 */
describe('CallLimit: two clients of one downstream, event by event', () => {
  const runs = Array.from({ length: 24 }, (_, k) => runShared({ workers: 4, rates: [1500, 1500], seconds: 20, seed: 7 + 13 * k, slowShare: 1 / 7 }));
  const offered = 1500 * 20;

  it('neither keeps the other at one call: each refuses little, in every run', () => {
    const refused = runs.map((clients) => Math.max(...clients.map((c) => c.refused)) / offered);
    expect(Math.max(...refused)).toBeLessThan(0.06);
    expect(refused.reduce((sum, share) => sum + share, 0) / runs.length).toBeLessThan(0.015);
  });

  it('they share the downstream\'s calls: the smaller share at least 0.6 of the larger in every run, 0.86 in most', () => {
    const shares = runs.map((clients) => Math.min(...clients.map((c) => c.calls)) / Math.max(...clients.map((c) => c.calls))).sort((a, b) => a - b);
    expect(shares[0]).toBeGreaterThan(0.6);
    expect(shares[runs.length >> 1]).toBeGreaterThan(0.86);
  });
});
