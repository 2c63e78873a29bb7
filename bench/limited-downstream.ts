/**
 * Does the sidecar shield a downstream with a limit, untuned? (SPEC §3, §4,
 * §10: "a downstream with a limit ... defaults, no tuning".) The simulated
 * legacy downstream with a pool of workers (WORKERS, each call costing
 * LATENCY_MS + PER_ITEM_MS × items, an unbounded FIFO in front), the sidecar
 * with no tuning at all, and the sidecar hand-tuned to that downstream beside
 * it in the same run (and, on request, the sidecar at an older commit), each
 * run with fresh processes: downstream, sidecar(s), and an open-loop generator
 * per sidecar (2,000 connections, 15 s measured after a 3 s warm-up at the
 * rate). One run: bench/limited-run.ts; verdicts and tables:
 * bench/limited-downstream-report.ts.
 *
 *   A3000, A6000  shape A (4 workers, 50 ms + 0.5 ms/item: 4,000 items/s in full batches) at 3,000 and 6,000 req/s
 *   B800          shape B (2 workers, 100 ms + 1 ms/item: 1,000 items/s) at 800 req/s
 *   C             shape C, in no target (8 workers, 30 ms + 1 ms/item: 6,154 items/s) at 5,000 req/s (0.81×)
 *   drop          shape A at 3,000 req/s for 20 s, its workers cut to 2 at 7 s and back to 4 at 12 s:
 *                 the call limit (sidecar_downstream_concurrency_limit, every 250 ms) over time
 *   two           two sidecars (each its own generator) in front of one shape-A downstream, 1,500 req/s each
 *
 * Variants, in this order within each run key (drift in the machine's load hits all alike):
 * `defaults` (no tuning variable), `hand-tuned` (DOWNSTREAM_CONCURRENCY=fixed SHARD_COUNT=1
 * MAX_INFLIGHT_BATCHES=<workers, shared among the sidecars of `two`> BATCH_MAX_WAIT_MS=40),
 * `base` (the sidecar at LIMITED_BASE_REF, default bbe5175, from a temporary git worktree, defaults).
 *
 * Run alone: `node bench/limited-downstream.ts` (about 5 minutes with two variants, 7 with base), results in
 * bench/results/limited-downstream.json and .md, printed; `npm run bench` runs it too
 * (BENCH_SKIP_LIMITED=1 leaves it out; BENCH_PHASE=limited runs it alone).
 * LIMITED_SHAPES=A3000,A6000,B800,C,drop,two (any letter and rate: B1200, C4000),
 * LIMITED_VARIANTS=defaults,hand-tuned (add base), LIMITED_BASE_REF, LIMITED_SECONDS (measured window).
 * BENCH_QUICK=1: about 2 s a run, by default A3000 with defaults only (a smoke test, not a measurement).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeBodies } from './hot-path.ts';
import { renderLimited } from './limited-downstream-report.ts';
import { DEFAULT_RATES, SHAPES, VARIANTS, type LimitedResults, type LimitedRun, type RunSpec, type VariantName } from './limited-downstream-types.ts';
import { capacityOf, measureRun, type RunContext } from './limited-run.ts';
import { runStandalone } from './standalone.ts';
import { sleep } from './stats.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const CONNECTIONS = 2000;
const MEASURE_S = Number(process.env.LIMITED_SECONDS ?? 15);
const TIME: RunContext['time'] = QUICK ? { warmup: 1, measure: 1, drop: 3, drain: 5 } : { warmup: 3, measure: MEASURE_S, drop: 20, drain: 12 };
const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DEFAULT_BASE_REF = 'bbe5175';

/** LIMITED_SHAPES as run specs, in the order given; throws on a name it does not know. */
export function parseShapes(list: string): RunSpec[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((key): RunSpec => {
      if (key === 'drop') return { key, kind: 'drop', shape: SHAPES.A, rate: 3000, sidecars: 1 };
      if (key === 'two') return { key, kind: 'two', shape: SHAPES.A, rate: 1500, sidecars: 2 };
      const match = /^([ABC])(\d+)?$/.exec(key);
      if (match === null) throw new Error(`LIMITED_SHAPES: unknown "${key}" (A3000, A6000, B800, C, drop, two; a letter A-C and a rate)`);
      const name = match[1] as 'A' | 'B' | 'C';
      return { key, kind: 'steady', shape: SHAPES[name], rate: match[2] === undefined ? DEFAULT_RATES[name] : Number(match[2]), sidecars: 1 };
    });
}

export function parseVariants(list: string): VariantName[] {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of names) if (!(VARIANTS as readonly string[]).includes(name)) throw new Error(`LIMITED_VARIANTS: unknown "${name}" (${VARIANTS.join(', ')})`);
  return names as VariantName[];
}

/** A temporary git worktree at `ref` with this tree's node_modules linked in; its remove() deletes it. */
function worktreeAt(ref: string): { readonly main: string; readonly commit: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sidecar-limited-base-'));
  execFileSync('git', ['worktree', 'add', '--detach', '--force', dir, ref], { cwd: ROOT, stdio: 'ignore' });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).trim();
  return {
    main: join(dir, 'src/main.ts'),
    commit,
    remove() {
      try {
        execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: ROOT, stdio: 'ignore' });
      } catch {
        // removed below all the same; `git worktree prune` forgets it
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const fmt = (n: number | null | undefined, d = 0): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));

function logRun(log: (line: string) => void, run: LimitedRun): void {
  const ds = run.downstream;
  for (const [i, s] of run.sides.entries()) {
    const who = run.sides.length > 1 ? ` #${i + 1}` : '';
    log(
      `    ${run.variant.padEnd(10)}${who} ${fmt(s.goodput)} 2xx/s (${fmt(100 * s.okShare, 1)}%), in time ${fmt(s.inTimeGoodput)}/s, p99 2xx ${fmt(s.okLatencyMs?.p99)} ms, ` +
        `503 ${s.shed} (${s.shedWithRetryAfter} retry-after), 504 ${s.status504}, errors ${s.errorCount}, unanswered ${s.unfinished}, ` +
        `batch ${fmt(s.meanBatchSize, 1)}, limit ${s.limit === null ? 'n/a' : `${fmt(s.limit.min)}..${fmt(s.limit.max)}`}, ` +
        `sidecar ${fmt(s.sidecarCpuPercent)}% CPU, generator ${fmt(s.generatorCpuPercent)}%`,
    );
  }
  log(`      downstream ${fmt(ds?.itemsPerSecond)} items/s (${fmt(ds?.capacityRatio, 2)}× capacity), queue wait p99 ${fmt(ds?.queueWaitP99Ms, 1)} ms, load ${fmt(run.loadAverage, 2)}`);
  if (run.drop !== null) log(`      call limit follows the drop within ${fmt(run.drop.followsWithinS, 2)} s, recovers within ${fmt(run.drop.recoversWithinS, 2)} s`);
}

/** Every selected run key, each with every selected variant in turn; for bench/run.ts and the command line. */
export async function runLimited(log: (line: string) => void): Promise<LimitedResults> {
  const started = performance.now();
  const loadAverageAtStart = loadavg()[0]!;
  const specs = parseShapes(process.env.LIMITED_SHAPES ?? (QUICK ? 'A3000' : 'A3000,A6000,B800,C,drop,two'));
  const variants = parseVariants(process.env.LIMITED_VARIANTS ?? (QUICK ? 'defaults' : 'defaults,hand-tuned'));
  const problems: string[] = [];
  const base = variants.includes('base') ? worktreeAt(process.env.LIMITED_BASE_REF ?? DEFAULT_BASE_REF) : null;
  const ctx: RunContext = { bodies: makeBodies(64), connections: CONNECTIONS, time: TIME, baseMain: base?.main ?? null, problems };
  const runs: LimitedRun[] = [];
  try {
    log(
      `  limited downstream: ${specs.map((s) => s.key).join(', ')} × ${variants.join(', ')}${base === null ? '' : ` (base = ${base.commit})`}; ` +
        `${CONNECTIONS} connections, ${TIME.warmup} s warm-up, ${TIME.measure} s measured (drop ${TIME.drop} s)`,
    );
    for (const spec of specs) {
      log(`  ${spec.key}: shape ${spec.shape.name} (${spec.shape.workers} workers, ${spec.shape.latencyMs} ms + ${spec.shape.perItemMs} ms/item, ${fmt(capacityOf(spec.shape))} items/s), ${spec.sidecars} × ${spec.rate} req/s`);
      for (const variant of variants) {
        try {
          const run = await measureRun(spec, variant, ctx);
          runs.push(run);
          logRun(log, run);
        } catch (error) {
          const message = `${spec.key} ${variant}: the run failed: ${error instanceof Error ? error.message : String(error)}`;
          problems.push(message);
          log(`    ${message}`);
        }
        await sleep(300);
      }
    }
  } finally {
    base?.remove();
  }
  return {
    date: new Date().toISOString(),
    quick: QUICK,
    cpus: cpus().length,
    loadAverageAtStart,
    loadAverageAtEnd: loadavg()[0]!,
    wallSeconds: (performance.now() - started) / 1000,
    connections: CONNECTIONS,
    durationsSeconds: TIME,
    baseRef: base?.commit ?? null,
    selected: { shapes: specs.map((s) => s.key), variants },
    shapes: Object.values(SHAPES).map((shape) => ({ ...shape, capacity: capacityOf(shape) })),
    runs,
    problems,
  };
}

if (import.meta.main) {
  // No sub-phases: LIMITED_SHAPES and LIMITED_VARIANTS select the runs.
  await runStandalone<never, LimitedResults>({
    name: 'limited-downstream',
    title: 'limited downstream',
    phases: [],
    quick: QUICK,
    run: (log) => runLimited(log),
    render: renderLimited,
    footer: (results) => `(${results.wallSeconds.toFixed(0)} s, load average at the end ${results.loadAverageAtEnd.toFixed(2)})`,
  });
}
