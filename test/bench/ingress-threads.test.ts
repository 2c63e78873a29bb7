import { describe, expect, it } from 'vitest';
import {
  byRound,
  closedOrder,
  ingressThreadsVerdicts,
  openOrder,
  renderIngressThreads,
  summarise,
  type ClosedThreadsRun,
  type IngressThreadsResults,
  type OpenThreadsRun,
} from '../../bench/phases/ingress-threads.ts';

const server = (meanBatchSize: number | null) => ({
  cpuSeconds: 1,
  peakRssBytes: 300 * 2 ** 20,
  gc: {},
  gcByIsolate: { main: {}, workers: {} },
  eventLoop: null,
  workerEventLoops: [],
  threadCpu: null,
  overhead: null,
  meanBatchSize,
});
const generator = { seconds: 3, percent: 30, windowSeconds: 10, totalSeconds: 4 };

function closed(threads: number, round: number, okPerSecond: number, non2xx = 0): ClosedThreadsRun {
  const closedLoop = { okPerSecond, non2xx, latencyMs: { p50: 100, p99: 800 }, statusCodes: { 200: okPerSecond * 10 } };
  return { variant: 'sidecar', threads, round, closed: closedLoop, server: server(null), cpuUsPerRequest: 100, generator } as unknown as ClosedThreadsRun;
}

function open(threads: number | null, round: number, p99: number, meanBatchSize: number | null, downstreamP99Ms: number | null): OpenThreadsRun {
  const segment = { label: 'measure', sent: 50_000, ok: 50_000, latencyMs: { p50: p99 / 2, p99, p999: p99 + 5 }, sendLagMs: { p99: 2 } };
  return { variant: threads === null ? 'bare' : 'sidecar', threads, round, segments: [segment], server: server(meanBatchSize), generator, downstreamP99Ms } as unknown as OpenThreadsRun;
}

function results(closedRuns: ClosedThreadsRun[], openRuns: OpenThreadsRun[]): IngressThreadsResults {
  return { date: '2026-01-01T00:00:00.000Z', quick: false, rate: 5000, downstreamHoldMs: 50, open: openRuns, closed: closedRuns, problems: [] };
}

describe('ingress threads: order of the variants', () => {
  it('alternates A B, B A, and bare, 1, 2 then 2, 1, bare', () => {
    expect(closedOrder(0)).toEqual([1, 2]);
    expect(closedOrder(1)).toEqual([2, 1]);
    expect(openOrder(0)).toEqual([null, 1, 2]);
    expect(openOrder(1)).toEqual([2, 1, null]);
  });
});

describe('ingress threads: verdicts', () => {
  it('judges the medians: throughput ratio, batch-size ratio, added p99 per mode against the same bare p99', () => {
    const r = results(
      [closed(1, 0, 10_000), closed(2, 0, 13_000, 50), closed(2, 1, 13_400), closed(1, 1, 10_400)],
      [open(null, 0, 3, null, null), open(1, 0, 62, 12.0, 51), open(2, 0, 64, 12.6, 51), open(2, 1, 68, 12.8, 51.4), open(1, 1, 60, 12.2, 50.6), open(null, 1, 5, null, null)],
    );
    const s = summarise(r);
    expect(s.throughputRatio).toBeCloseTo(13_200 / 10_200, 6);
    expect(s.sides.find((x) => x.threads === 2)?.non2xx).toBe(50);
    expect(s.bareP99).toBe(4);
    expect(s.batchSizeRatio).toBeCloseTo(12.7 / 12.1, 6);
    expect(s.sides.find((x) => x.threads === 1)?.added).toBeCloseTo(61 - 50.8 - 4, 6);
    expect(s.sides.find((x) => x.threads === 2)?.added).toBeCloseTo(66 - 51.2 - 4, 6);
    const verdicts = ingressThreadsVerdicts(r);
    expect(verdicts.map((v) => v.pass)).toEqual([true, true, true, true]);
    expect(verdicts[0]!.result).toContain('1.29×');
  });

  it('fails a ratio under 1.25×, a batch size off by more than 10 %, an added p99 over 15 ms', () => {
    const r = results([closed(1, 0, 10_000), closed(2, 0, 12_000)], [open(null, 0, 4, null, null), open(1, 0, 60, 12, 50), open(2, 0, 80, 10.5, 50)]);
    expect(ingressThreadsVerdicts(r).map((v) => v.pass)).toEqual([false, false, true, false]);
  });

  it('falls back to the nominal hold when the downstream was not read, and says n/a without a bare run', () => {
    const r = results([], [open(1, 0, 60, 12, null), open(2, 0, 62, 12, null)]);
    const verdicts = ingressThreadsVerdicts(r);
    expect(verdicts).toHaveLength(3);
    expect(verdicts[1]!.name).toContain('nominal 50 ms');
    expect(verdicts[1]!.pass).toBeNull();
    expect(renderIngressThreads(r)).toContain('| n/a |');
  });
});

describe('ingress threads: round by round', () => {
  it("pairs each round's runs: the ratios and each mode's added p99 against that round's bare run", () => {
    const r = results(
      [closed(1, 0, 10_000), closed(2, 0, 8_000), closed(2, 1, 12_000), closed(1, 1, 8_000)],
      [open(null, 0, 40, null, null), open(1, 0, 70, 12, 51), open(2, 0, 66, 12, 51), open(2, 1, 66, 12.6, 51), open(1, 1, 80, 12, 50), open(null, 1, 2, null, null)],
    );
    const rounds = byRound(r);
    expect(rounds.map((x) => x.throughputRatio)).toEqual([0.8, 1.5]);
    expect(rounds[1]!.batchSizeRatio).toBeCloseTo(1.05, 6);
    expect(rounds[0]!.addedP99).toEqual([{ threads: 1, ms: 70 - 51 - 40 }, { threads: 2, ms: 66 - 51 - 40 }]);
    expect(rounds[1]!.addedP99).toEqual([{ threads: 1, ms: 80 - 50 - 2 }, { threads: 2, ms: 66 - 51 - 2 }]);
    expect(renderIngressThreads(r)).toContain('- round 2: closed-loop 2xx/s ratio 1.50×');
  });
});
