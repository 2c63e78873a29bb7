/**
 * One run of bench/limited-downstream.ts: what does one variant of the
 * sidecar do in front of a downstream with a limit, at one offered rate? A
 * fresh simulated downstream of the shape (its own process, WORKERS,
 * PER_ITEM_MS), one or two fresh sidecars (their own processes), one open-loop
 * generator per sidecar (bench/generator.ts, its own process, 2,000
 * connections, latency from each request's intended send time). When a
 * generator's measured window opens: the downstream's GET /stats is reset,
 * each sidecar's /metrics scraped and /proc sampled, and
 * sidecar_downstream_concurrency_limit sampled every 250 ms (where the gauge
 * exists); when the window closes (every request sent), the same again. A drop
 * run POSTs /control {"workers": n} to the downstream mid-window and back.
 * (The 250 ms scrapes cost the sidecar a little CPU, in its figure; a sidecar
 * without the gauge is left alone after two scrapes.)
 */
import { request } from 'undici';
import { loadavg } from 'node:os';
import { maxItemsPerSecond } from '../sim/legacy-downstream.ts';
import { startDownstream, startSidecarChild, type Child, type Sidecar } from './children.ts';
import { runGenerator, type OpenGeneratorResult } from './generator-process.ts';
import type { DownstreamFigures, DropFigures, DropPlan, LimitedRun, LimitFigures, LimitPoint, RunSpec, Shape, SideFigures, VariantName } from './limited-downstream-types.ts';
import { histogram, histogramDelta, increaseByLabel, mean, scrape, sum, type Scrape } from './metrics.ts';
import { cpuBetween, sampleProcess, type ProcSample } from './proc.ts';
import type { Segment } from './segment-loop.ts';

export const LIMIT_GAUGE = 'sidecar_downstream_concurrency_limit';
const SAMPLE_MS = 250;

export interface RunContext {
  readonly bodies: readonly string[];
  readonly connections: number;
  /** Seconds: warm-up at the rate, the measured window (drop runs: `drop`), the generator's drain. */
  readonly time: { readonly warmup: number; readonly measure: number; readonly drop: number; readonly drain: number };
  /** The base variant's src/main.ts (in a git worktree); null when it does not run. */
  readonly baseMain: string | null;
  readonly problems: string[];
}

/** Items/s of `shape` with full batches of `batchSize` on every worker (the simulator's own formula). */
export function capacityOf(shape: Shape, batchSize = 100): number {
  return maxItemsPerSecond({ workers: shape.workers, latencyMs: shape.latencyMs, perItemMs: shape.perItemMs }, batchSize);
}

/** The sidecar's environment for a variant, DOWNSTREAM_URL left out; hand-tuned shares the workers among the sidecars. */
export function variantEnv(variant: VariantName, spec: RunSpec): Record<string, string> {
  if (variant !== 'hand-tuned') return {};
  const inflight = Math.max(1, Math.round(spec.shape.workers / spec.sidecars));
  return { DOWNSTREAM_CONCURRENCY: 'fixed', SHARD_COUNT: '1', MAX_INFLIGHT_BATCHES: String(inflight), BATCH_MAX_WAIT_MS: '40' };
}

/** What the simulator's GET /stats answers; older versions only the first four fields. */
interface RawStats {
  batches?: number;
  p50?: number | null;
  p99?: number | null;
  max?: number | null;
  items?: number;
  seconds?: number;
  itemsPerSecond?: number;
  callsPerSecond?: number;
  queueWait?: { p50?: number | null; p99?: number | null; max?: number | null };
  refused?: number;
}

async function downstreamStats(origin: string, reset: boolean): Promise<RawStats | null> {
  try {
    const { statusCode, body } = await request(`${origin}/stats${reset ? '?reset=1' : ''}`, { headersTimeout: 3000, bodyTimeout: 3000 });
    if (statusCode !== 200) {
      await body.dump();
      return null;
    }
    return (await body.json()) as RawStats;
  } catch {
    return null;
  }
}

/** POST /control: the downstream's options changed at once; true when it answered 2xx. */
async function control(origin: string, options: Record<string, number>): Promise<boolean> {
  try {
    const { statusCode, body } = await request(`${origin}/control`, {
      method: 'POST',
      body: JSON.stringify(options),
      headers: { 'content-type': 'application/json' },
      headersTimeout: 3000,
    });
    await body.dump();
    return statusCode >= 200 && statusCode < 300;
  } catch {
    return false;
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function downstreamFigures(stats: RawStats | null, shape: Shape): DownstreamFigures | null {
  if (stats === null) return null;
  const capacity = capacityOf(shape);
  const itemsPerSecond = num(stats.itemsPerSecond);
  const batches = num(stats.batches);
  const items = num(stats.items);
  return {
    batches,
    items,
    itemsPerSecond,
    callsPerSecond: num(stats.callsPerSecond),
    capacity,
    capacityRatio: itemsPerSecond === null ? null : itemsPerSecond / capacity,
    queueWaitP50Ms: num(stats.queueWait?.p50),
    queueWaitP99Ms: num(stats.queueWait?.p99),
    queueWaitMaxMs: num(stats.queueWait?.max),
    holdP99Ms: num(stats.p99),
    refused: num(stats.refused),
    meanBatchSize: items === null || batches === null || batches === 0 ? null : items / batches,
  };
}

/** Scrapes /metrics every 250 ms for the call-limit gauge; gives up after two scrapes without it (an older sidecar). */
class LimitSampler {
  readonly points: LimitPoint[] = [];
  private readonly url: string;
  private readonly t0: number;
  private readonly timer: NodeJS.Timeout;
  private misses = 0;
  private busy = false;

  constructor(url: string, t0: number) {
    this.url = url;
    this.t0 = t0;
    this.timer = setInterval(() => this.tick(), SAMPLE_MS);
    this.tick();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  figures(): LimitFigures | null {
    if (this.points.length === 0) return null;
    const values = this.points.map((p) => p.limit);
    return { min: Math.min(...values), mean: values.reduce((a, b) => a + b, 0) / values.length, max: Math.max(...values), samples: values.length };
  }

  private tick(): void {
    if (this.busy) return;
    this.busy = true;
    const t = (performance.now() - this.t0) / 1000;
    void scrape(this.url)
      .then((samples) => {
        const limit = sum(samples, LIMIT_GAUGE);
        if (limit !== null) this.points.push({ t, limit });
        else if (++this.misses >= 2 && this.points.length === 0) this.stop();
      })
      .finally(() => (this.busy = false));
  }
}

/** What is sampled on one sidecar when its generator's window opens and closes. */
interface Side {
  readonly sidecar: Sidecar;
  p0: ProcSample | null;
  p1: ProcSample | null;
  t0: number;
  t1: number;
  before: Promise<Scrape | null>;
  after: Promise<Scrape | null>;
  sampler: LimitSampler | null;
}

/** The drop plan of a run of `seconds`: at 7 s and 12 s of 20, scaled, the workers halved (at least one fewer). */
export function dropPlan(shape: Shape, seconds: number): DropPlan {
  return { dropAtS: (seconds * 7) / 20, restoreAtS: (seconds * 12) / 20, droppedWorkers: Math.max(1, Math.min(shape.workers - 1, Math.floor(shape.workers / 2))) };
}

function dropFigures(plan: DropPlan, shape: Shape, series: LimitPoint[], at: { dropped: number | null; restored: number | null }, result: OpenGeneratorResult, warmup: number): DropFigures {
  const follows = series.find((p) => p.t >= plan.dropAtS && p.t < plan.restoreAtS && p.limit <= plan.droppedWorkers + 1);
  const recovers = series.find((p) => p.t >= plan.restoreAtS && p.limit >= shape.workers);
  const perSecond = result.seconds
    .filter((s) => s.segment === 'measure')
    .map((s) => ({ t: s.second - warmup, sent: s.sent, ok: s.ok, shed: s.shed, other: s.sent - s.ok - s.shed }));
  return {
    ...plan,
    droppedAtS: at.dropped,
    restoredAtS: at.restored,
    series,
    followsWithinS: follows === undefined ? null : follows.t - plan.dropAtS,
    recoversWithinS: recovers === undefined ? null : recovers.t - plan.restoreAtS,
    perSecond,
  };
}

function distinctProblems(sidecar: Sidecar): string[] {
  return [...new Set(sidecar.problems())].slice(0, 5);
}

async function sideFigures(side: Side, result: OpenGeneratorResult, rate: number): Promise<SideFigures> {
  const measured = result.segments.find((s) => s.label === 'measure') ?? result.segments.at(-1)!;
  const [before, after] = await Promise.all([side.before, side.after]);
  const batchSize = histogramDelta(histogram(before, 'sidecar_batch_size'), histogram(after, 'sidecar_batch_size'));
  const window = (side.t1 - side.t0) / 1000;
  const cpu = cpuBetween(side.p0, side.p1);
  const requests = Math.floor(measured.rate * measured.seconds);
  return {
    offered: rate,
    requests,
    ok: measured.ok,
    goodput: measured.goodput,
    okShare: requests > 0 ? measured.ok / requests : 0,
    inTimeGoodput: measured.okInTime / measured.seconds,
    servedPerSecond: measured.servedPerSecond,
    okLatencyMs: measured.okLatencyMs,
    latencyMs: measured.latencyMs,
    shed: measured.shed,
    shedWithRetryAfter: measured.shedWithRetryAfter,
    status504: measured.statuses['504'] ?? 0,
    statuses: measured.statuses,
    errors: measured.errors,
    errorCount: measured.errorCount,
    unfinished: measured.unfinished,
    neverWritten: Math.max(0, result.requests.total - result.requests.written),
    sendLagP99Ms: measured.sendLagMs?.p99 ?? null,
    meanBatchSize: mean(batchSize),
    calls: batchSize?.count ?? null,
    outcomes: increaseByLabel(before, after, 'sidecar_requests_total', 'outcome'),
    sidecarCpuPercent: cpu === null || window <= 0 ? null : (100 * cpu) / window,
    generatorCpuPercent: result.cpu.percent,
    limit: side.sampler?.figures() ?? null,
    problems: distinctProblems(side.sidecar),
  };
}

/** One run: fresh downstream and sidecar(s), the generator(s), the figures; every process stopped before it returns. */
export async function measureRun(spec: RunSpec, variant: VariantName, ctx: RunContext): Promise<LimitedRun> {
  const { shape } = spec;
  const label = `${spec.key} ${variant}`;
  const loadAverage = loadavg()[0]!;
  const downstream: Child = await startDownstream(shape.latencyMs, { workers: shape.workers, perItemMs: shape.perItemMs, queueLimit: shape.queueLimit, jitterMs: 0 });
  const origin = new URL(downstream.url).origin;
  const sidecars: Sidecar[] = [];
  const timers: NodeJS.Timeout[] = [];
  const sides: Side[] = [];
  try {
    const env = variantEnv(variant, spec);
    const main = variant === 'base' ? (ctx.baseMain ?? undefined) : undefined;
    if (variant === 'base' && main === undefined) throw new Error('the base variant needs a worktree (LIMITED_BASE_REF)');
    for (let i = 0; i < spec.sidecars; i++) sidecars.push(await startSidecarChild({ DOWNSTREAM_URL: downstream.url, ...env }, { main }));
    const seconds = spec.kind === 'drop' ? ctx.time.drop : ctx.time.measure;
    const plan = spec.kind === 'drop' ? dropPlan(shape, seconds) : null;
    const segments: Segment[] = [
      { label: 'warmup', rate: spec.rate, seconds: ctx.time.warmup },
      { label: 'measure', rate: spec.rate, seconds },
    ];
    let windowStart: number | null = null;
    let reset: Promise<RawStats | null> = Promise.resolve(null);
    let end: Promise<RawStats | null> = Promise.resolve(null);
    let sentCount = 0;
    const at = { dropped: null as number | null, restored: null as number | null };
    const since = (): number => (performance.now() - (windowStart ?? performance.now())) / 1000;
    const open = (side: Side): void => {
      if (windowStart === null) {
        windowStart = performance.now();
        reset = downstreamStats(origin, true);
        if (plan !== null) {
          timers.push(setTimeout(() => void control(origin, { workers: plan.droppedWorkers }).then((ok) => (at.dropped = ok ? since() : null)), plan.dropAtS * 1000));
          timers.push(setTimeout(() => void control(origin, { workers: shape.workers }).then((ok) => (at.restored = ok ? since() : null)), plan.restoreAtS * 1000));
        }
      }
      side.p0 = sampleProcess(side.sidecar.pid);
      side.t0 = performance.now();
      side.before = scrape(side.sidecar.url);
      side.sampler = new LimitSampler(side.sidecar.url, windowStart);
    };
    const close = (side: Side): void => {
      side.p1 = sampleProcess(side.sidecar.pid);
      side.t1 = performance.now();
      side.after = scrape(side.sidecar.url);
      side.sampler?.stop();
      if (++sentCount === sides.length) end = downstreamStats(origin, false);
    };
    for (const sidecar of sidecars) {
      sides.push({ sidecar, p0: null, p1: null, t0: 0, t1: 0, before: Promise.resolve(null), after: Promise.resolve(null), sampler: null });
    }
    const results = await Promise.all(
      sides.map((side) =>
        runGenerator(
          { mode: 'open', origin: side.sidecar.url, connections: ctx.connections, bodies: ctx.bodies, segments, drainS: ctx.time.drain, stamp: variant === 'stamped' },
          (event) => {
            if (event.event === 'segment' && event.index === 1) open(side);
            else if (event.event === 'sent') close(side);
          },
        ),
      ),
    );
    await reset;
    const stats = await end;
    if (stats === null) ctx.problems.push(`${label}: the downstream's GET /stats could not be read`);
    if (plan !== null && at.dropped === null) ctx.problems.push(`${label}: POST /control {"workers":${plan.droppedWorkers}} failed (or was not answered): no capacity drop happened`);
    const figures = await Promise.all(sides.map((side, i) => sideFigures(side, results[i]!, spec.rate)));
    const windowSeconds = sides.length > 0 ? (sides[0]!.t1 - sides[0]!.t0) / 1000 : 0;
    return {
      key: spec.key,
      kind: spec.kind,
      shape,
      variant,
      rate: spec.rate,
      env,
      windowSeconds,
      loadAverage,
      sides: figures,
      downstream: downstreamFigures(stats, shape),
      drop: plan === null ? null : dropFigures(plan, shape, sides[0]?.sampler?.points ?? [], at, results[0]!, ctx.time.warmup),
    };
  } finally {
    for (const timer of timers) clearTimeout(timer);
    for (const side of sides) side.sampler?.stop();
    for (const sidecar of sidecars) {
      const exit = await sidecar.stop(10_000);
      if (exit.code !== 0) ctx.problems.push(`${label}: the sidecar exited ${JSON.stringify(exit)}`);
    }
    await downstream.stop();
  }
}
