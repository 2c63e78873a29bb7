import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';

describe('simulated downstream GET /stats', () => {
  let downstream: LegacyDownstream | undefined;
  afterEach(async () => {
    await downstream?.close();
    downstream = undefined;
  });

  async function stats(origin: string, query = ''): Promise<{ batches: number; p50: number | null; p99: number | null; max: number | null }> {
    const { statusCode, body } = await request(`${origin}/stats${query}`);
    expect(statusCode).toBe(200);
    return (await body.json()) as { batches: number; p50: number | null; p99: number | null; max: number | null };
  }

  it('reports the hold times of the batches answered since the last reset, and resets on ?reset=1', async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 20 });
    const origin = new URL(downstream.url).origin;
    expect(await stats(origin)).toMatchObject({ batches: 0, p50: null, p99: null, max: null });
    for (let i = 0; i < 3; i++) {
      const { statusCode, body } = await request(downstream.url, { method: 'POST', body: JSON.stringify([i, i + 1]), headers: { 'content-type': 'application/json' } });
      expect(statusCode).toBe(200);
      expect(await body.json()).toEqual([{ echo: i }, { echo: i + 1 }]);
    }
    const first = await stats(origin, '?reset=1');
    expect(first.batches).toBe(3);
    // ≥ the 20 ms latency, less the up to 1 ms a libuv timer may fire early against performance.now().
    expect(first.p99).toBeGreaterThanOrEqual(19);
    expect(first.max).toBeGreaterThanOrEqual(first.p99!);
    expect(first.p50).toBeLessThanOrEqual(first.p99!);
    expect((await stats(origin)).batches).toBe(0);
    // Other non-POST requests are still refused.
    const other = await request(`${origin}/batch`);
    expect(other.statusCode).toBe(405);
    await other.body.dump();
  });
});
