/**
 * What happens in a burst? (SPEC §10, unlimited downstream, 4,000
 * connections, judged by in-time goodput: 2xx answered within 1 s of the
 * intended send time, per second. 20,000 req/s → p99 of all answers ≤ 1 s,
 * in-time goodput ≥ 0.9× the floor's; 30,000 req/s stamped `x-request-start`
 * at the intended send time → p99 ≤ 1 s, ≥ 1.0× the floor's; the same
 * unstamped → p99 ≤ 1.1× the floor's, ≥ 0.9×. And issue 10's: every request
 * answered, a result or a 503 with retry-after; no resets; the steady p99
 * back from 2 s after the burst.)
 *
 * An open-loop schedule: 1,000 req/s for 3 s, the burst for 10 s, 1,000 req/s
 * for 5 s; the bare route, the floor and the sidecar, each a fresh traced
 * process, the window over the burst. BURSTS lists the bursts, a rate with
 * ":stamped" for stamps (default 20000,30000:stamped,30000; quick: 20000).
 */
import type { Variant } from '../kit/launcher.ts';
import type { Segment, SegmentResult } from '../kit/open-loop.ts';
import { judge, listSection, num, table, verdictTable, type Phase, type Results, type Verdict } from '../kit/report.ts';
import { alternate, openRun, withDownstream, type OpenRun } from '../kit/runs.ts';
import { median, ratio, sleep } from '../kit/stats.ts';
import { QUICK, TIME, VARIANTS } from '../kit/workload.ts';

export const TARGETS = { p99Ms: 1000, unstampedP99OfFloor: 1.1, inTimeOfFloor: 0.9, stampedInTimeOfFloor: 1.0, recoveryMarginMs: 15 } as const;
const SCHEDULE = QUICK ? { before: 1, burst: 2, grace: 2, recovered: 1 } : { before: 3, burst: 10, grace: 2, recovered: 3 };

export type Burst = { readonly rate: number; readonly stamped: boolean };

export type BurstRun = OpenRun & Burst;

export type BurstsResults = Results<{ schedule: typeof SCHEDULE; runs: BurstRun[] }>;

/** BURSTS: "20000,30000:stamped". */
export function parseBursts(list: string): Burst[] {
  return list.split(',').filter((s) => s.trim() !== '').map((s) => {
    const match = /^\s*(\d+)(:stamped)?\s*$/.exec(s);
    if (match === null) throw new Error(`BURSTS: "${s}" is not a rate, or a rate with :stamped`);
    return { rate: Number(match[1]), stamped: match[2] !== undefined };
  });
}

function schedule(rate: number): Segment[] {
  return [
    { label: 'warmup', rate: 1000, seconds: TIME.warmup },
    { label: 'before', rate: 1000, seconds: SCHEDULE.before },
    { label: 'burst', rate, seconds: SCHEDULE.burst },
    { label: 'grace', rate: 1000, seconds: SCHEDULE.grace },
    { label: 'recovered', rate: 1000, seconds: SCHEDULE.recovered },
  ];
}

const name = (b: Burst): string => `${num(b.rate, 0)} req/s ${b.stamped ? 'stamped' : 'unstamped'}`;
const seg = (run: BurstRun, label: string): SegmentResult => run.segments.find((s) => s.label === label)!;
const runsOf = (r: BurstsResults, b: Burst, variant: Variant): BurstRun[] => r.runs.filter((run) => run.rate === b.rate && run.stamped === b.stamped && run.variant === variant);

function burstVerdicts(r: BurstsResults, b: Burst): Verdict[] {
  const sidecar = runsOf(r, b, 'sidecar');
  if (sidecar.length === 0) return [];
  const floor = runsOf(r, b, 'floor');
  const all = sidecar.flatMap((run) => run.segments);
  const without = all.reduce((n, s) => n + s.unfinished + s.otherStatus + (s.shed - s.shedWithRetryAfter) + s.errorCount, 0);
  const resets = all.reduce((n, s) => n + Object.entries(s.errors).filter(([code]) => /RESET|SOCKET|EPIPE|CLOSED/i.test(code)).reduce((m, [, k]) => m + k, 0), 0);
  const p99 = median(sidecar.map((run) => seg(run, 'burst').latencyMs?.p99));
  const floorP99 = median(floor.map((run) => seg(run, 'burst').latencyMs?.p99));
  const good = median(sidecar.map((run) => seg(run, 'burst').inTimeGoodput));
  const floorGood = median(floor.map((run) => seg(run, 'burst').inTimeGoodput));
  const goodRatio = ratio(good, floorGood);
  const goodTarget = b.stamped ? TARGETS.stampedInTimeOfFloor : TARGETS.inTimeOfFloor;
  const p99ByFloor = !b.stamped && b.rate > 20_000;
  const p99Ratio = ratio(p99, floorP99);
  const before = median(sidecar.map((run) => seg(run, 'before').latencyMs?.p99));
  const after = median(sidecar.map((run) => seg(run, 'recovered').latencyMs?.p99));
  const burst = sidecar.map((run) => seg(run, 'burst'));
  return [
    { name: `${name(b)}: every request answered (a result, or 503 with retry-after)`, result: `${num(burst.reduce((n, s) => n + s.ok, 0), 0)} ok, ${num(burst.reduce((n, s) => n + s.shed, 0), 0)} × 503 in the burst; ${num(without, 0)} without`, target: '0 without', pass: without === 0 },
    { name: `${name(b)}: resets`, result: num(resets, 0), target: '0', pass: resets === 0 },
    p99ByFloor
      ? { name: `${name(b)}: p99 of all answers, sidecar / floor`, result: `${num(p99, 0)} / ${num(floorP99, 0)} ms = ${num(p99Ratio, 2)}×`, target: `≤ ${TARGETS.unstampedP99OfFloor}×`, pass: judge(p99Ratio, (v) => v <= TARGETS.unstampedP99OfFloor) }
      : { name: `${name(b)}: p99 of all answers`, result: `${num(p99, 0)} ms (floor: ${num(floorP99, 0)})`, target: `≤ ${num(TARGETS.p99Ms, 0)} ms`, pass: judge(p99, (v) => v <= TARGETS.p99Ms) },
    { name: `${name(b)}: in-time goodput (2xx within 1 s, per s), sidecar / floor`, result: `${num(good, 0)} / ${num(floorGood, 0)} = ${num(goodRatio, 2)}×`, target: `≥ ${goodTarget}×`, pass: judge(goodRatio, (v) => v >= goodTarget) },
    { name: `${name(b)}: p99 from ${SCHEDULE.grace} s after the burst, against before it`, result: `${num(after)} ms (before: ${num(before)} ms)`, target: `≤ before + ${TARGETS.recoveryMarginMs} ms`, pass: before === null || after === null ? null : after <= before + TARGETS.recoveryMarginMs },
  ];
}

const bursts = (r: BurstsResults): Burst[] => [...new Map(r.runs.map((run) => [`${run.rate}:${run.stamped}`, { rate: run.rate, stamped: run.stamped }])).values()];

export function verdicts(r: BurstsResults): Verdict[] {
  return bursts(r).flatMap((b) => burstVerdicts(r, b));
}

export function render(r: BurstsResults): string {
  const rows = r.runs.flatMap((run) =>
    run.segments.map((s) => [
      name(run), run.variant, s.label, num(s.sent, 0), num(s.ok, 0), `${num(s.shed, 0)} (${num(s.shedWithRetryAfter, 0)})`, num(s.otherStatus + s.errorCount + s.unfinished, 0),
      `${num(s.latencyMs?.p50, 0)} / ${num(s.latencyMs?.p99, 0)} / ${num(s.latencyMs?.max, 0)}`, num(s.inTimeGoodput, 0), num(s.servedPerSecond, 0), num(s.sendLagMs?.p99),
    ]),
  );
  const seconds = r.runs.map((run) => `${name(run)} ${run.variant}: ${run.seconds.filter((x) => x.segment !== 'warmup').map((x) => `${num(x.p99, 0)} (${x.ok}/${x.shed}/${x.errors + x.unfinished})`).join(' · ')}`);
  return [
    `## Bursts (open loop: 1,000 req/s for ${r.schedule.before} s, the burst for ${r.schedule.burst} s, 1,000 req/s for ${r.schedule.grace + r.schedule.recovered} s${r.quick ? '; BENCH_QUICK: a smoke run, not a measurement' : `; ${r.date}`})`,
    '',
    ...verdictTable(verdicts(r)),
    '',
    ...table(['burst', 'variant', 'segment', 'sent', '2xx', '503 (retry-after)', 'other / errors / unanswered', 'p50 / p99 / max ms, all answers', 'in-time 2xx/s', '2xx/s arriving', 'send lag p99 ms'], rows),
    '',
    'Second by second, by intended send time (p99 ms of all answers, and 2xx / 503 / errors + unanswered):',
    '',
    ...seconds.map((line) => `- ${line}`),
    ...listSection('Problems', r.problems),
    '',
  ].join('\n');
}

export const burstsPhase: Phase<BurstsResults> = {
  name: 'bursts',
  question: 'In a 20k or 30k req/s burst (stamped or not), is every request answered, how fast, and how much in time, against the floor?',
  verdicts,
  render,
  run: (log) =>
    withDownstream(log, async (ctx) => {
      const runs: BurstRun[] = [];
      for (const b of parseBursts(process.env.BURSTS ?? (QUICK ? '20000' : '20000,30000:stamped,30000'))) {
        for (const variant of alternate(VARIANTS, 0)) {
          runs.push({ ...(await openRun(ctx, { variant, label: `${name(b)} ${variant}`, round: 0 }, schedule(b.rate), { stamp: b.stamped, closeAt: 3 })), ...b });
          await sleep(300);
        }
      }
      return { date: new Date().toISOString(), quick: QUICK, schedule: SCHEDULE, runs, problems: ctx.problems };
    }),
};
