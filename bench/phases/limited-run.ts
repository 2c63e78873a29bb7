/**
 * One run of the limited-downstream phase: what one variant of the sidecar
 * does in front of a downstream with a limit at one offered rate. Fresh
 * processes: the simulated downstream of the shape, one or two sidecars, an
 * open-loop generator per sidecar. When the measured window opens the
 * downstream's GET /stats is reset, each sidecar read (bench/kit/window.ts)
 * and its call limit sampled every 250 ms; a drop run POSTs /control
 * {"workers": n} mid-window and back.
 */
import { loadavg } from 'node:os';
import { maxItemsPerSecond } from '../../sim/legacy-downstream.ts';
import type { DownstreamStats } from '../../sim/legacy-downstream.ts';
import { runGenerator, type OpenResult } from '../kit/generator.ts';
import { startDownstream, startServer, type Child } from '../kit/launcher.ts';
import { scrape, sum } from '../../sim/scrape.ts';
import { Window } from '../kit/window.ts';
import type { DownstreamFigures, DropFigures, LimitedRun, LimitFigures, RunKind, Shape, SideFigures, VariantName } from './limited-report.ts';

export const LIMIT_GAUGE = 'sidecar_downstream_concurrency_limit';

/** A run as LIMITED_SHAPES names it (A3000, B800, C, D800, drop, two): its shape, the rate offered to each of its sidecars. */
export type RunSpec = { readonly key: string; readonly kind: RunKind; readonly shape: Shape; readonly rate: number; readonly sidecars: number };

/** What every run shares; baseMain: the base variant's src/main.ts (in a git worktree), null when it does not run. */
export interface RunContext {
  readonly bodies: readonly string[];
  readonly connections: number;
  readonly time: { readonly warmup: number; readonly measure: number; readonly drop: number; readonly drain: number };
  readonly baseMain: string | null;
  readonly problems: string[];
}

/** Items/s of `shape` with full batches of 100 on every worker (the simulator's own formula). */
export function capacityOf(shape: Shape): number {
  return maxItemsPerSecond(shape, 100);
}

/** The sidecar's environment for a variant; hand-tuned shares the workers among the sidecars. */
export function variantEnv(variant: VariantName, spec: RunSpec): Record<string, string> {
  if (variant !== 'hand-tuned') return {};
  return { DOWNSTREAM_CONCURRENCY: 'fixed', SHARD_COUNT: '1', MAX_INFLIGHT_BATCHES: String(Math.max(1, Math.round(spec.shape.workers / spec.sidecars))), BATCH_MAX_WAIT_MS: '40' };
}

/** Scrapes /metrics every 250 ms for the call-limit gauge; gives up after two scrapes without it (an older sidecar). */
class LimitSampler {
  readonly points: { t: number; limit: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private misses = 0;
  private busy = false;

  constructor(url: string, t0: number) {
    const tick = (): void => {
      if (this.busy) return;
      this.busy = true;
      const t = (performance.now() - t0) / 1000;
      void scrape(url)
        .then((samples) => {
          const limit = sum(samples, LIMIT_GAUGE);
          if (limit !== null) this.points.push({ t, limit });
          else if (++this.misses >= 2 && this.points.length === 0) this.stop();
        })
        .finally(() => (this.busy = false));
    };
    this.timer = setInterval(tick, 250);
    tick();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  figures(): LimitFigures | null {
    const v = this.points.map((p) => p.limit);
    return v.length === 0 ? null : { min: Math.min(...v), mean: v.reduce((a, b) => a + b, 0) / v.length, max: Math.max(...v), samples: v.length };
  }
}

function downstreamFigures(stats: DownstreamStats | null, shape: Shape): DownstreamFigures | null {
  if (stats === null) return null;
  const capacity = capacityOf(shape);
  const { batches, items, itemsPerSecond, callsPerSecond, queueWait, p99, refused } = stats;
  return { batches, items, itemsPerSecond, callsPerSecond, capacity, capacityRatio: itemsPerSecond / capacity, queueWaitP50Ms: queueWait.p50, queueWaitP99Ms: queueWait.p99, queueWaitMaxMs: queueWait.max, holdP99Ms: p99, refused, meanBatchSize: batches > 0 ? items / batches : null };
}

/** The drop plan of a run of `seconds`: at 7 s and 12 s of 20, scaled, the workers halved (at least one fewer). */
export function dropPlan(shape: Shape, seconds: number): { dropAtS: number; restoreAtS: number; droppedWorkers: number } {
  return { dropAtS: (seconds * 7) / 20, restoreAtS: (seconds * 12) / 20, droppedWorkers: Math.max(1, Math.min(shape.workers - 1, Math.floor(shape.workers / 2))) };
}

type Side = { readonly sidecar: Child; readonly window: Window; sampler: LimitSampler | null; t0: number; t1: number };

async function sideFigures(side: Side, result: OpenResult, rate: number): Promise<SideFigures> {
  const m = result.segments.find((s) => s.label === 'measure')!;
  const server = await side.window.figures();
  const seconds = (side.t1 - side.t0) / 1000;
  const requests = Math.floor(m.rate * m.seconds);
  return {
    offered: rate, requests, ok: m.ok, goodput: m.goodput, okShare: requests > 0 ? m.ok / requests : 0, inTimeGoodput: m.inTimeGoodput, servedPerSecond: m.servedPerSecond,
    okLatencyMs: m.okLatencyMs, latencyMs: m.latencyMs, shed: m.shed, shedWithRetryAfter: m.shedWithRetryAfter, status504: m.statuses['504'] ?? 0, statuses: m.statuses,
    errors: m.errors, errorCount: m.errorCount, unfinished: m.unfinished, neverWritten: Math.max(0, result.requests.total - result.requests.written), sendLagP99Ms: m.sendLagMs?.p99 ?? null,
    meanBatchSize: server.meanBatchSize, calls: server.batches, outcomes: server.outcomes, sidecarCpuPercent: server.cpuSeconds === null || seconds <= 0 ? null : (100 * server.cpuSeconds) / seconds,
    generatorCpuPercent: result.cpu.percent, limit: side.sampler?.figures() ?? null, problems: side.sidecar.problems().slice(0, 5),
  };
}

/** One run: fresh downstream and sidecar(s), the generator(s), the figures; every process stopped before it returns. */
export async function measureRun(spec: RunSpec, variant: VariantName, ctx: RunContext): Promise<LimitedRun> {
  const { shape } = spec;
  const label = `${spec.key} ${variant}`;
  const loadAverage = loadavg()[0]!;
  const downstream = await startDownstream(shape);
  const sides: Side[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    const env = variantEnv(variant, spec);
    if (variant === 'base' && ctx.baseMain === null) throw new Error('the base variant needs a worktree (LIMITED_BASE_REF)');
    for (let i = 0; i < spec.sidecars; i++) {
      const sidecar = await startServer('sidecar', { DOWNSTREAM_URL: downstream.url, ...env }, { main: variant === 'base' ? ctx.baseMain! : undefined });
      sides.push({ sidecar, window: new Window(sidecar, true), sampler: null, t0: 0, t1: 0 });
    }
    const seconds = spec.kind === 'drop' ? ctx.time.drop : ctx.time.measure;
    const plan = spec.kind === 'drop' ? dropPlan(shape, seconds) : null;
    const segments = [{ label: 'warmup', rate: spec.rate, seconds: ctx.time.warmup }, { label: 'measure', rate: spec.rate, seconds }];
    let windowStart: number | null = null;
    let reset: Promise<unknown> = Promise.resolve();
    let end: Promise<DownstreamStats | null> = Promise.resolve(null);
    let closed = 0;
    const at = { dropped: null as number | null, restored: null as number | null };
    const since = (): number => (performance.now() - windowStart!) / 1000;
    const later = (s: number, workers: number, key: 'dropped' | 'restored'): void => void timers.push(setTimeout(() => void downstream.control({ workers }).then((ok) => (at[key] = ok ? since() : null)), s * 1000));
    const open = (side: Side): void => {
      if (windowStart === null) {
        windowStart = performance.now();
        reset = downstream.stats(true);
        if (plan !== null) {
          later(plan.dropAtS, plan.droppedWorkers, 'dropped');
          later(plan.restoreAtS, shape.workers, 'restored');
        }
      }
      side.window.open();
      side.t0 = performance.now();
      side.sampler = new LimitSampler(side.sidecar.url, windowStart);
    };
    const close = (side: Side): void => {
      side.window.close();
      side.t1 = performance.now();
      side.sampler?.stop();
      if (++closed === sides.length) end = downstream.stats();
    };
    const results = await Promise.all(
      sides.map((side) =>
        runGenerator({ mode: 'open', origin: side.sidecar.url, connections: ctx.connections, bodies: ctx.bodies, segments, drainS: ctx.time.drain, stamp: variant === 'stamped' }, (e) => {
          if (e.event === 'segment' && e.index === 1) open(side);
          else if (e.event === 'sent') close(side);
        }),
      ),
    );
    await reset;
    const stats = await end;
    if (stats === null) ctx.problems.push(`${label}: the downstream's GET /stats could not be read`);
    if (plan !== null && at.dropped === null) ctx.problems.push(`${label}: POST /control {"workers":${plan.droppedWorkers}} failed: no capacity drop happened`);
    const figures = await Promise.all(sides.map((side, i) => sideFigures(side, results[i]!, spec.rate)));
    let drop: DropFigures | null = null;
    if (plan !== null) {
      const series = sides[0]?.sampler?.points ?? [];
      const follows = series.find((p) => p.t >= plan.dropAtS && p.t < plan.restoreAtS && p.limit <= plan.droppedWorkers + 1);
      const recovers = series.find((p) => p.t >= plan.restoreAtS && p.limit >= shape.workers);
      const perSecond = results[0]!.seconds.filter((s) => s.segment === 'measure').map((s) => ({ t: s.second - ctx.time.warmup, sent: s.sent, ok: s.ok, shed: s.shed, other: s.sent - s.ok - s.shed }));
      drop = { ...plan, droppedAtS: at.dropped, restoredAtS: at.restored, series, followsWithinS: follows === undefined ? null : follows.t - plan.dropAtS, recoversWithinS: recovers === undefined ? null : recovers.t - plan.restoreAtS, perSecond };
    }
    const windowSeconds = sides.length > 0 ? (sides[0]!.t1 - sides[0]!.t0) / 1000 : 0;
    return { key: spec.key, kind: spec.kind, shape, variant, rate: spec.rate, env, windowSeconds, loadAverage, sides: figures, downstream: downstreamFigures(stats, shape), drop };
  } finally {
    for (const timer of timers) clearTimeout(timer);
    for (const side of sides) {
      side.sampler?.stop();
      const exit = await side.sidecar.stop(10_000);
      if (exit.code !== 0) ctx.problems.push(`${label}: the sidecar exited ${JSON.stringify(exit)}`);
    }
    await downstream.stop();
  }
}
