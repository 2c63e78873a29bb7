/**
 * Does the sidecar shield a downstream with a limit, untuned? (SPEC §10: 4
 * workers, 50 ms + 0.5 ms per item, at most 4,000 items/s in full batches;
 * defaults, no tuning; at 3,000 and 6,000 req/s, through a capacity drop, and
 * for other shapes.) The sidecar with no tuning variable, and beside it the
 * same stamping `x-request-start`, the sidecar hand-tuned to the downstream,
 * and the sidecar at an older commit, each run with fresh processes
 * (bench/phases/limited-run.ts), verdicts in bench/phases/limited-report.ts.
 *
 *   A3000, A6000  shape A (4 workers, 50 ms + 0.5 ms/item: 4,000 items/s) at 3,000 and 6,000 req/s
 *   B800          shape B (2 workers, 100 ms + 1 ms/item: 1,000 items/s) at 800 req/s
 *   C             shape C, in no target (8 workers, 30 ms + 1 ms/item: 6,154 items/s) at 5,000 req/s
 *   D800          shape D, in no target (1 worker, 50 ms + 0.5 ms/item: 1,000 items/s) at 800 req/s: a legacy
 *                 system that serves one call at a time, where one call too many queues every call
 *   drop          A at 3,000 req/s for 20 s, its workers cut to 2 at 7 s and back at 12 s
 *   two           two sidecars, each with its own generator, in front of one shape-A downstream, 1,500 req/s each
 *
 * LIMITED_SHAPES (default all; any letter and rate: B1200), LIMITED_VARIANTS
 * (default defaults,hand-tuned; stamped, base), LIMITED_BASE_REF (bbe5175),
 * LIMITED_SECONDS (15). Quick: A3000 with defaults, about 2 s.
 */
import { cpus, loadavg } from 'node:os';
import { worktreeAt } from '../kit/launcher.ts';
import { num, type Phase } from '../kit/report.ts';
import { sleep } from '../kit/stats.ts';
import { makeBodies, QUICK } from '../kit/workload.ts';
import { limitedVerdicts, renderLimited, type LimitedResults, type LimitedRun, type Shape, type VariantName } from './limited-report.ts';
import { capacityOf, measureRun, type RunContext, type RunSpec } from './limited-run.ts';

const CONNECTIONS = 2000;
const TIME: RunContext['time'] = QUICK ? { warmup: 0.5, measure: 1, drop: 3, drain: 3 } : { warmup: 3, measure: Number(process.env.LIMITED_SECONDS ?? 15), drop: 20, drain: 12 };

export const SHAPES: Readonly<Record<'A' | 'B' | 'C' | 'D', Shape>> = {
  A: { name: 'A', workers: 4, latencyMs: 50, perItemMs: 0.5, queueLimit: 0 },
  B: { name: 'B', workers: 2, latencyMs: 100, perItemMs: 1, queueLimit: 0 },
  C: { name: 'C', workers: 8, latencyMs: 30, perItemMs: 1, queueLimit: 0 },
  D: { name: 'D', workers: 1, latencyMs: 50, perItemMs: 0.5, queueLimit: 0 },
};
const DEFAULT_RATES = { A: 3000, B: 800, C: 5000, D: 800 } as const;
export const VARIANTS: readonly VariantName[] = ['defaults', 'stamped', 'hand-tuned', 'base'];

/** LIMITED_SHAPES as run specs, in the order given; throws on a name it does not know. */
export function parseShapes(list: string): RunSpec[] {
  return list.split(',').map((s) => s.trim()).filter((s) => s !== '').map((key): RunSpec => {
    if (key === 'drop') return { key, kind: 'drop', shape: SHAPES.A, rate: 3000, sidecars: 1 };
    if (key === 'two') return { key, kind: 'two', shape: SHAPES.A, rate: 1500, sidecars: 2 };
    const match = /^([A-D])(\d+)?$/.exec(key);
    if (match === null) throw new Error(`LIMITED_SHAPES: unknown "${key}" (A3000, A6000, B800, C, D800, drop, two; a letter A-D and a rate)`);
    const name = match[1] as keyof typeof SHAPES;
    return { key, kind: 'steady', shape: SHAPES[name], rate: match[2] === undefined ? DEFAULT_RATES[name] : Number(match[2]), sidecars: 1 };
  });
}

export function parseVariants(list: string): VariantName[] {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of names) if (!(VARIANTS as readonly string[]).includes(name)) throw new Error(`LIMITED_VARIANTS: unknown "${name}" (${VARIANTS.join(', ')})`);
  return names as VariantName[];
}

function logRun(log: (line: string) => void, run: LimitedRun): void {
  const sides = run.sides.map((s) => `${num(s.goodput, 0)} 2xx/s, p99 ${num(s.okLatencyMs?.p99, 0)} ms, ${s.shed} × 503, batch ${num(s.meanBatchSize)}, limit ${s.limit === null ? 'n/a' : `${s.limit.min}..${s.limit.max}`}`);
  log(`    ${run.variant}: ${sides.join(' | ')}; downstream ${num(run.downstream?.capacityRatio, 2)}× capacity, queue wait p99 ${num(run.downstream?.queueWaitP99Ms)} ms`);
}

async function runLimited(log: (line: string) => void): Promise<LimitedResults> {
  const started = performance.now();
  const loadAverageAtStart = loadavg()[0]!;
  const specs = parseShapes(process.env.LIMITED_SHAPES ?? (QUICK ? 'A3000' : 'A3000,A6000,B800,C,D800,drop,two'));
  const variants = parseVariants(process.env.LIMITED_VARIANTS ?? (QUICK ? 'defaults' : 'defaults,hand-tuned'));
  const problems: string[] = [];
  const base = variants.includes('base') ? worktreeAt(process.env.LIMITED_BASE_REF ?? 'bbe5175') : null;
  const ctx: RunContext = { bodies: makeBodies(64), connections: CONNECTIONS, time: TIME, baseMain: base?.main ?? null, problems };
  const runs: LimitedRun[] = [];
  try {
    for (const spec of specs) {
      log(`  ${spec.key}: shape ${spec.shape.name} (${num(capacityOf(spec.shape), 0)} items/s), ${spec.sidecars} × ${spec.rate} req/s`);
      for (const variant of variants) {
        try {
          const run = await measureRun(spec, variant, ctx);
          runs.push(run);
          logRun(log, run);
        } catch (error) {
          problems.push(`${spec.key} ${variant}: the run failed: ${error instanceof Error ? error.message : String(error)}`);
          log(`    ${problems.at(-1)}`);
        }
        await sleep(300);
      }
    }
  } finally {
    base?.remove();
  }
  const shapes = Object.values(SHAPES).map((shape) => ({ ...shape, capacity: capacityOf(shape) }));
  return {
    date: new Date().toISOString(), quick: QUICK, cpus: cpus().length, loadAverageAtStart, loadAverageAtEnd: loadavg()[0]!, wallSeconds: (performance.now() - started) / 1000,
    connections: CONNECTIONS, durationsSeconds: TIME, baseRef: base?.commit ?? null, selected: { shapes: specs.map((s) => s.key), variants }, shapes, runs, problems,
  };
}

export const limitedDownstream: Phase<LimitedResults> = {
  name: 'limited-downstream',
  question: 'Does the sidecar, untuned, shield a downstream with a limit: at and over its capacity, through a capacity drop, two sidecars sharing it?',
  run: runLimited,
  verdicts: limitedVerdicts,
  render: renderLimited,
};
