/**
 * Does the adaptive batch window earn its place? (ADR 0016, opt-in: with room
 * at the downstream it should cut added p99 at 1,000 req/s by ≥ 5 ms against
 * the fixed window; at a bottleneck whose slots fill it must make no more
 * downstream calls than fixed mode.) BATCH_WINDOW_MODE fixed and adaptive
 * alternated round by round at 1,000, 5,000 and 10,000 req/s on a 50 ms
 * downstream with room (MAX_INFLIGHT_BATCHES=32), and at 1,000 req/s on a
 * 200 ms downstream with 18 slots a shard (DOWNSTREAM_CONCURRENCY=fixed: the
 * slots of ADR 0016, not the learned limit); the bare route at each rate for
 * added p99. Window: the mean over the shards of sidecar_batch_window_seconds
 * at the last send. Calls per 1,000 requests pool every round.
 */
import { judge, listSection, num, table, verdictTable, type Phase, type Results, type Verdict } from '../kit/report.ts';
import { alternate, openRun, steady, withDownstream, type Context, type OpenRun } from '../kit/runs.ts';
import { median, sleep } from '../kit/stats.ts';
import { DOWNSTREAM_HOLD_MS, QUICK, ROUNDS, sidecarEnv } from '../kit/workload.ts';

const MODES = ['fixed', 'adaptive'] as const;
const ROOM = { scenario: 'room', latencyMs: DOWNSTREAM_HOLD_MS, maxInflight: 32, rates: [1000, 5000, 10_000] } as const;
const BOTTLENECK = { scenario: 'bottleneck', latencyMs: 200, maxInflight: 18, rates: [1000] } as const;
export const TARGETS = { latencyGainAt1000Ms: 5, bottleneckExtraCalls: 0 } as const;

export type WindowRun = OpenRun & { readonly scenario: string; readonly rate: number; readonly mode: (typeof MODES)[number] | null; readonly latencyMs: number };

export type WindowModeResults = Results<{ runs: WindowRun[] }>;

const of = (r: WindowModeResults, scenario: string, rate: number, mode: WindowRun['mode']): WindowRun[] => r.runs.filter((x) => x.scenario === scenario && x.rate === rate && x.mode === mode);
const p99 = (run: WindowRun): number | null => run.segments[0]!.latencyMs?.p99 ?? null;

/** Added p99 (median client p99 − the downstream's latency − the bare route's median p99) and pooled calls per 1,000 requests. */
export function figures(r: WindowModeResults, scenario: string, rate: number, mode: 'fixed' | 'adaptive') {
  const runs = of(r, scenario, rate, mode);
  const bare = median(r.runs.filter((x) => x.mode === null && x.rate === rate).map(p99));
  const client = median(runs.map(p99));
  const [batches, items] = [runs.reduce((n, x) => n + (x.server.batches ?? 0), 0), runs.reduce((n, x) => n + (x.server.items ?? 0), 0)];
  return { added: client === null || bare === null ? null : client - (runs[0]?.latencyMs ?? 0) - bare, callsPer1000: items > 0 ? (1000 * batches) / items : null, windowMs: median(runs.map((x) => x.server.batchWindowMs)) };
}

export function verdicts(r: WindowModeResults): Verdict[] {
  const [f, a] = MODES.map((mode) => figures(r, 'room', 1000, mode));
  const gain = f!.added === null || a!.added === null ? null : f!.added - a!.added;
  const [bf, ba] = MODES.map((mode) => figures(r, 'bottleneck', 1000, mode));
  const extra = bf!.callsPer1000 === null || ba!.callsPer1000 === null ? null : ba!.callsPer1000 - bf!.callsPer1000;
  return [
    { name: 'added p99 at 1,000 req/s with room, fixed − adaptive', result: `${num(f!.added)} − ${num(a!.added)} = ${num(gain)} ms`, target: `≥ ${TARGETS.latencyGainAt1000Ms} ms`, pass: judge(gain, (v) => v >= TARGETS.latencyGainAt1000Ms) },
    { name: 'calls / 1,000 requests at the bottleneck (all rounds), adaptive − fixed', result: `${num(ba!.callsPer1000)} − ${num(bf!.callsPer1000)} = ${num(extra)}`, target: `≤ ${TARGETS.bottleneckExtraCalls}`, pass: judge(extra, (v) => v <= TARGETS.bottleneckExtraCalls) },
  ];
}

export function render(r: WindowModeResults): string {
  const steps = [...ROOM.rates.map((rate) => ['room', rate] as const), ...BOTTLENECK.rates.map((rate) => ['bottleneck', rate] as const)].filter(([s, rate]) => of(r, s, rate, 'fixed').length > 0);
  const rows = steps.map(([scenario, rate]) => {
    const [f, a] = MODES.map((mode) => figures(r, scenario, rate, mode));
    const rounds = MODES.map((mode) => of(r, scenario, rate, mode).map((x) => num(p99(x), 0)).join(', ')).join(' / ');
    return [scenario, num(rate, 0), `${num(f!.added)} / ${num(a!.added)}`, rounds, `${num(f!.callsPer1000)} / ${num(a!.callsPer1000)}`, `${num(f!.windowMs)} / ${num(a!.windowMs)}`];
  });
  return [
    `## Batch window: fixed against adaptive (BATCH_MIN_WAIT_MS=1, BATCH_MAX_WAIT_MS=10${r.quick ? '; BENCH_QUICK: a smoke run, not a measurement' : `; ${r.date}`})`,
    '',
    ...verdictTable(verdicts(r)),
    '',
    ...table(['scenario', 'req/s', 'added p99 ms, fixed / adaptive', 'client p99 of each round, fixed / adaptive', 'calls / 1,000 req, fixed / adaptive', 'window ms at the last send'], rows),
    '',
    `room: a ${ROOM.latencyMs} ms downstream, MAX_INFLIGHT_BATCHES=${ROOM.maxInflight}; bottleneck: ${BOTTLENECK.latencyMs} ms, ${BOTTLENECK.maxInflight} slots a shard, which fill at their peaks in fixed mode (ADR 0016).`,
    ...listSection('Problems', r.problems),
    '',
  ].join('\n');
}

async function scenario(ctx: Context, s: typeof ROOM | typeof BOTTLENECK, runs: WindowRun[]): Promise<void> {
  for (const rate of QUICK ? s.rates.slice(0, 1) : s.rates) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of alternate(MODES, round)) {
        const env = sidecarEnv(ctx.downstream.url, { BATCH_WINDOW_MODE: mode, BATCH_MIN_WAIT_MS: '1', MAX_INFLIGHT_BATCHES: String(s.maxInflight), DOWNSTREAM_CONCURRENCY: 'fixed' });
        runs.push({ ...(await openRun(ctx, { variant: 'sidecar', env, label: `${s.scenario} ${rate}/s ${mode}`, round }, steady(rate))), scenario: s.scenario, rate, mode, latencyMs: s.latencyMs });
        await sleep(300);
      }
    }
  }
}

export const windowMode: Phase<WindowModeResults> = {
  name: 'window-mode',
  question: 'Does the adaptive batch window cut latency with room, and add no calls at a bottleneck, against the fixed window?',
  verdicts,
  render,
  run: async (log) => {
    const runs: WindowRun[] = [];
    const problems: string[] = [];
    await withDownstream(log, async (ctx) => {
      await scenario(ctx, ROOM, runs);
      for (const rate of QUICK ? [1000] : ROOM.rates) runs.push({ ...(await openRun(ctx, { variant: 'bare', round: 0 }, steady(rate))), scenario: 'bare', rate, mode: null, latencyMs: 0 });
      problems.push(...ctx.problems);
    });
    await withDownstream(log, async (ctx) => (await scenario(ctx, BOTTLENECK, runs), problems.push(...ctx.problems)), { latencyMs: BOTTLENECK.latencyMs });
    return { date: new Date().toISOString(), quick: QUICK, runs, problems };
  },
};
