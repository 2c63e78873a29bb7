import { describe, expect, it } from 'vitest';
import { parseShapes, parseVariants, SHAPES } from '../../bench/phases/limited-downstream.ts';
import { limitedVerdicts, renderLimited, twoFigures, type LimitedResults, type LimitedRun, type SideFigures } from '../../bench/phases/limited-report.ts';

const latency = (p99: number) => ({ count: 1, mean: p99 / 2, p50: p99 / 2, p90: p99, p99, p999: p99, max: p99 });

function side(rate: number, figures: Partial<SideFigures> = {}): SideFigures {
  const requests = rate * 15;
  return {
    offered: rate,
    requests,
    ok: requests,
    goodput: rate,
    okShare: 1,
    inTimeGoodput: rate,
    servedPerSecond: rate,
    okLatencyMs: latency(200),
    latencyMs: latency(200),
    shed: 0,
    shedWithRetryAfter: 0,
    status504: 0,
    statuses: { 200: requests },
    errors: {},
    errorCount: 0,
    unfinished: 0,
    neverWritten: 0,
    sendLagP99Ms: 2,
    meanBatchSize: 60,
    calls: requests / 60,
    outcomes: null,
    sidecarCpuPercent: 30,
    generatorCpuPercent: 25,
    limit: { min: 4, mean: 5, max: 6, samples: 60 },
    problems: [],
    ...figures,
  };
}

function run(key: string, shape: keyof typeof SHAPES, rate: number, sides: SideFigures[], queueWaitP99Ms: number, extra: Partial<LimitedRun> = {}): LimitedRun {
  const capacity = { A: 4000, B: 1000, C: 6153.8, D: 1000 }[shape];
  return {
    key,
    kind: 'steady',
    shape: SHAPES[shape],
    variant: 'defaults',
    rate,
    env: {},
    windowSeconds: 15,
    loadAverage: 1,
    sides,
    downstream: {
      batches: 100,
      items: 6000,
      itemsPerSecond: rate * sides.length,
      callsPerSecond: 50,
      capacity,
      capacityRatio: (rate * sides.length) / capacity,
      queueWaitP50Ms: 1,
      queueWaitP99Ms,
      queueWaitMaxMs: queueWaitP99Ms,
      holdP99Ms: 100,
      refused: 0,
      meanBatchSize: 60,
    },
    drop: null,
    ...extra,
  };
}

function results(runs: LimitedRun[]): LimitedResults {
  return {
    date: '2026-01-01T00:00:00.000Z',
    quick: false,
    cpus: 2,
    loadAverageAtStart: 1,
    loadAverageAtEnd: 1,
    wallSeconds: 100,
    connections: 2000,
    durationsSeconds: { warmup: 3, measure: 15, drop: 20, drain: 12 },
    baseRef: null,
    selected: { shapes: runs.map((r) => r.key), variants: ['defaults'] },
    shapes: [],
    runs,
    problems: [],
  };
}

describe('bench/phases/limited-report.ts', () => {
  it('judges A@3,000 by SPEC §10 and a shape in no target by checks derived from its capacity, marked *', () => {
    const verdicts = limitedVerdicts(results([run('A3000', 'A', 3000, [side(3000)], 80), run('C', 'C', 5000, [side(5000)], 10)]));
    const a = verdicts.filter((v) => v.run === 'A3000');
    expect(a.map((v) => [v.name, v.pass])).toEqual([
      ['answered 200', true],
      ['client p99 of the 2xx', true],
      ['downstream queue wait p99', false],
      ['503s', true],
    ]);
    const c = verdicts.filter((v) => v.run === 'C');
    expect(c.every((v) => v.name.endsWith(' *'))).toBe(true);
    // 3 × (30 + 100 × 1) ms.
    expect(c.find((v) => v.name.startsWith('client p99'))!.target).toBe('≤ 390 ms');
  });

  it('over capacity: 3,400 2xx/s, 1.5 s, and every other request a 503 with retry-after', () => {
    const over = side(6000, { ok: 54_000, goodput: 3600, okShare: 0.6, okLatencyMs: latency(1200), shed: 36_000, shedWithRetryAfter: 36_000 });
    const good = limitedVerdicts(results([run('A6000', 'A', 6000, [over], 40)]));
    expect(good.every((v) => v.pass === true)).toBe(true);
    const reset = { ...over, shedWithRetryAfter: 35_990, errorCount: 10, errors: { ECONNRESET: 10 } };
    const bad = limitedVerdicts(results([run('A6000', 'A', 6000, [reset], 40)]));
    expect(bad.find((v) => v.name === 'the rest: 503 with retry-after')!.pass).toBe(false);
  });

  it('judges the drop by when the call limit follows and recovers, and two sidecars by goodput and call shares', () => {
    const series = [
      { t: 6.75, limit: 6 },
      { t: 8.25, limit: 3 },
      { t: 12.5, limit: 3 },
      { t: 15.5, limit: 4 },
    ];
    const drop = run('drop', 'A', 3000, [side(3000)], 30, {
      kind: 'drop',
      drop: { dropAtS: 7, restoreAtS: 12, droppedWorkers: 2, droppedAtS: 7.01, restoredAtS: 12.01, series, followsWithinS: 1.25, recoversWithinS: 3.5, perSecond: [{ t: 8, sent: 3000, ok: 2000, shed: 1000, other: 0 }] },
    });
    const two = run('two', 'A', 1500, [side(1500, { calls: 300 }), side(1500, { calls: 200 })], 20, { kind: 'two' });
    const single = run('A3000', 'A', 3000, [side(3000)], 20);
    const r = results([single, drop, two]);
    const verdicts = limitedVerdicts(r);
    expect(verdicts.filter((v) => v.run === 'drop').map((v) => v.pass)).toEqual([true, true]);
    expect(twoFigures(two).shareRatio).toBeCloseTo(200 / 300);
    expect(verdicts.filter((v) => v.run === 'two').map((v) => v.pass)).toEqual([true, true, false]);
    const md = renderLimited(r);
    expect(md).toContain('### Capacity drop, defaults');
    expect(md).toContain('| 8 | 3 | 3000 | 2000 | 1000 | 0 |');
  });

  it('reads LIMITED_SHAPES and LIMITED_VARIANTS, refusing names it does not know', () => {
    expect(parseShapes('A6000,C,B1200,D800,drop,two').map((s) => [s.key, s.kind, s.shape.name, s.rate, s.sidecars])).toEqual([
      ['A6000', 'steady', 'A', 6000, 1],
      ['C', 'steady', 'C', 5000, 1],
      ['B1200', 'steady', 'B', 1200, 1],
      ['D800', 'steady', 'D', 800, 1],
      ['drop', 'drop', 'A', 3000, 1],
      ['two', 'two', 'A', 1500, 2],
    ]);
    expect(() => parseShapes('E100')).toThrow(/unknown "E100"/);
    expect(parseVariants('defaults,base')).toEqual(['defaults', 'base']);
    expect(() => parseVariants('tuned')).toThrow(/unknown "tuned"/);
  });
});
