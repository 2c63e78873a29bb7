import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { shardForKey } from '../../src/actors/routing.ts';
import { killAll, startServer, type Child } from '../../bench/kit/launcher.ts';
import { floorRows, verdicts, type AddedLatencyResults } from '../../bench/phases/added-latency.ts';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';

describe('bench/floor-server.ts, the least batching route', () => {
  let downstream: LegacyDownstream | undefined;
  let floor: Child | undefined;
  afterEach(async () => {
    await floor?.stop();
    await downstream?.close();
    floor = undefined;
    downstream = undefined;
    killAll();
  });

  async function post(origin: string, item: unknown, extra: Record<string, string> = {}, raw?: Buffer) {
    const { statusCode, headers, body } = await request(`${origin}/process`, {
      method: 'POST',
      body: raw ?? JSON.stringify(item),
      headers: { 'content-type': 'application/json', ...extra },
    });
    return { statusCode, batchId: headers['x-batch-id'], shard: headers['x-shard'], timing: headers['server-timing'], body: (await body.json()) as unknown };
  }

  it('answers each caller its own result, one downstream call per shard and window', async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 5, record: true });
    // A window long enough for all eight to arrive on a busy machine (new connections to a fresh process).
    floor = await startServer('floor', { DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '2', BATCH_MAX_WAIT_MS: '1000' });
    const items = Array.from({ length: 8 }, (_, i) => ({ key: `user-${i}`, n: i }));
    const answers = await Promise.all(items.map((item) => post(floor!.url, item)));
    answers.forEach((answer, i) => {
      expect(answer.statusCode).toBe(200);
      expect(answer.body).toEqual({ echo: items[i] });
      expect(answer.shard).toBe(String(shardForKey(items[i]!.key, 2)));
    });
    // All eight arrive within one window: one call per shard that got an item.
    const shards = new Set(items.map((item) => shardForKey(item.key, 2)));
    expect(downstream.received).toHaveLength(shards.size);
    expect(new Set(answers.map((answer) => answer.batchId)).size).toBe(shards.size);
  });

  it('answers the whole batch 502 when the downstream fails it', async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 5, behaviour: 'status-500' });
    floor = await startServer('floor', { DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '1', BATCH_MAX_WAIT_MS: '5' });
    const answers = await Promise.all([post(floor.url, { key: 'a' }), post(floor.url, { key: 'b' })]);
    expect(answers.map((answer) => answer.statusCode)).toEqual([502, 502]);
  });

  it('with FLOOR_CONTRACT=1 does what SPEC asks of each request: timing, deadlines from the stamp, UTF-8, metrics', async () => {
    downstream = await LegacyDownstream.start({ latencyMs: 200 });
    floor = await startServer('contract', { DOWNSTREAM_URL: downstream.url, SHARD_COUNT: '1', BATCH_MAX_WAIT_MS: '5' });
    const stamp = `t=${((Date.now() - 50) / 1000).toFixed(3)}`;
    const [served, late, expired, notUtf8] = await Promise.all([
      post(floor.url, { key: 'a' }, { 'x-request-start': stamp }),
      post(floor.url, { key: 'b' }, { 'x-timeout-ms': '100' }),
      post(floor.url, { key: 'c' }, { 'x-request-start': String(Date.now() - 20_000) }),
      post(floor.url, null, {}, Buffer.from([0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])),
    ]);
    expect(served.statusCode).toBe(200);
    expect(served.timing).toMatch(/^edge;dur=[\d.]+, queue;dur=[\d.]+, downstream;dur=[\d.]+, sidecar;dur=[\d.]+$/);
    expect([late.statusCode, expired.statusCode, notUtf8.statusCode]).toEqual([504, 504, 400]);
    const metrics = await (await request(`${floor.url}/metrics`)).body.text();
    expect(metrics).toContain('sidecar_requests_total{outcome="ok"} 1');
    expect(metrics).toContain('sidecar_requests_total{outcome="timeout"} 2');
    expect(metrics).toMatch(/sidecar_overhead_seconds_count 1\b/);
    expect(metrics).toMatch(/sidecar_edge_wait_seconds_count 2\b/);
  });
});

describe('floorRows (bench/phases/added-latency.ts)', () => {
  // 10 s at 5,000 req/s: CPU seconds × 20 = µs per request.
  const open = (variant: string, cpuUsPerRequest: number, p99: number, callsPer1000: number | null = null) => ({
    variant,
    rate: 5000,
    segments: [{ rate: 5000, seconds: 10, latencyMs: { p99 } }],
    server: { cpuSeconds: cpuUsPerRequest / 20, callsPer1000, gc: {} },
  });
  const results = (runs: unknown[]) => ({ runs }) as unknown as AddedLatencyResults;

  it('gives each variant its median over rounds: CPU per request, client p99, downstream calls', () => {
    const rows = floorRows(
      results([open('bare', 30, 2), open('bare', 32, 4), open('floor', 50, 63, 80), open('floor', 54, 65, 80), open('sidecar', 60, 64, 78), open('sidecar', 64, 66, 80)]),
    );
    expect(rows.map((row) => row.figure)).toEqual(['server CPU µs per request at 5,000 req/s', 'client p99 ms at 5,000 req/s', 'downstream calls per 1,000 requests at 5,000 req/s']);
    expect(rows[0]).toMatchObject({ bare: 31, floor: 52, sidecar: 62 });
    expect(rows[1]).toMatchObject({ bare: 3, floor: 64, sidecar: 65 });
    expect(rows[2]).toMatchObject({ bare: null, floor: 80, sidecar: 79 });
  });

  it('splits CPU per request into what the contract costs and what the sidecar adds to it', () => {
    const rows = verdicts(results([open('floor', 50, 63), open('contract', 60, 64), open('sidecar', 66, 65)]));
    const result = (name: RegExp) => rows.find((row) => name.test(row.name))?.result;
    expect(result(/sidecar \/ floor/)).toContain('= 1.32×');
    expect(result(/contract floor \/ floor/)).toContain('= 1.20×');
    expect(result(/sidecar over the contract floor/)).toBe('1.10×');
  });

  it("sets the floor's added p99 beside the sidecar's, the same way", () => {
    const at = (variant: string, p99: number) => ({ ...open(variant, 50, p99), downstreamP99Ms: 51 });
    const rows = verdicts(results([at('bare', 3), at('floor', 70), at('sidecar', 80)]));
    expect(rows.find((row) => row.name.startsWith('added p99 at 5,000'))?.result).toBe("80.0 − 51.0 − 3.0 = 26.0 ms (the floor's: 16.0 ms)");
  });

  it('has no floor figures when the floor did not run', () => {
    expect(floorRows(results([open('bare', 30, 2), open('sidecar', 60, 64)])).every((row) => row.floor === null)).toBe(true);
  });
});
