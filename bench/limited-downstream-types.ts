/**
 * The shapes, runs and result types of bench/limited-downstream.ts ("does the
 * sidecar shield a downstream with a limit, untuned?"), in a file of their
 * own so that the phase (bench/limited-downstream.ts, bench/limited-run.ts)
 * and its report (bench/limited-downstream-report.ts) both import them one
 * way, with no cycle between the phase and its report.
 */
import type { Percentiles } from './stats.ts';

/** A downstream with a limit: `workers` batches at once, each costing latencyMs + perItemMs × items. */
export interface Shape {
  readonly name: string;
  readonly workers: number;
  readonly latencyMs: number;
  readonly perItemMs: number;
  /** Downstream QUEUE_LIMIT (0 = an unbounded FIFO, the default). */
  readonly queueLimit: number;
}

/** SPEC §10's shape, a slower one, and one that is in no target (our choice). */
export const SHAPES: Readonly<Record<'A' | 'B' | 'C', Shape>> = {
  A: { name: 'A', workers: 4, latencyMs: 50, perItemMs: 0.5, queueLimit: 0 },
  B: { name: 'B', workers: 2, latencyMs: 100, perItemMs: 1, queueLimit: 0 },
  C: { name: 'C', workers: 8, latencyMs: 30, perItemMs: 1, queueLimit: 0 },
};

/** The rate a bare shape name runs at (A3000 etc. name their own): C at 5,000 req/s is 0.81× its 6,154 items/s. */
export const DEFAULT_RATES: Readonly<Record<'A' | 'B' | 'C', number>> = { A: 3000, B: 800, C: 5000 };

/**
 * defaults: the sidecar with no tuning variable at all; stamped: the same,
 * with the generator stamping `x-request-start` at each request's intended
 * send time as a load balancer in front would (SPEC §2); hand-tuned: one
 * shard, fixed call limit = the workers, a 40 ms window; base: the sidecar at
 * an older commit (LIMITED_BASE_REF) with defaults, for before/after.
 */
export type VariantName = 'defaults' | 'stamped' | 'hand-tuned' | 'base';
export const VARIANTS: readonly VariantName[] = ['defaults', 'stamped', 'hand-tuned', 'base'];

/** steady: one sidecar at a fixed rate; drop: the downstream's workers cut and restored mid-run; two: two sidecars in front of one downstream. */
export type RunKind = 'steady' | 'drop' | 'two';

export interface RunSpec {
  /** As selected by LIMITED_SHAPES: A3000, B800, C, drop, two, ... */
  readonly key: string;
  readonly kind: RunKind;
  readonly shape: Shape;
  /** Offered rate per sidecar (req/s). */
  readonly rate: number;
  readonly sidecars: number;
}

/** POST /control times of a drop run, seconds after the measured window opened. */
export interface DropPlan {
  readonly dropAtS: number;
  readonly restoreAtS: number;
  readonly droppedWorkers: number;
}

export interface LimitPoint {
  /** Seconds since the measured window opened. */
  readonly t: number;
  readonly limit: number;
}

/** sidecar_downstream_concurrency_limit, sampled every 250 ms over the window; null where the gauge is absent. */
export interface LimitFigures {
  readonly min: number;
  readonly mean: number;
  readonly max: number;
  readonly samples: number;
}

/** One sidecar's figures over the measured window (from its generator, its /metrics and /proc). */
export interface SideFigures {
  /** Offered rate (req/s) and the requests due in the window. */
  readonly offered: number;
  readonly requests: number;
  readonly ok: number;
  /** 2xx answers to the window's requests per second of the window, and as a share of the requests due. */
  readonly goodput: number;
  readonly okShare: number;
  /** 2xx answered within 1 s of the intended send time, per second of the window: what callers can use. */
  readonly inTimeGoodput: number;
  /** 2xx answers (to any request) that arrived while the window lasted, per second: the throughput, backlog in and out. */
  readonly servedPerSecond: number;
  /** Latency of the 2xx answers, ms from the intended send time. */
  readonly okLatencyMs: Percentiles | null;
  /** Latency of every HTTP answer. */
  readonly latencyMs: Percentiles | null;
  readonly shed: number;
  readonly shedWithRetryAfter: number;
  readonly status504: number;
  readonly statuses: Record<string, number>;
  /** Requests with no HTTP answer, by error code (resets, socket errors). */
  readonly errors: Record<string, number>;
  readonly errorCount: number;
  /** Window requests unanswered when the generator's drain ended (never sent or never answered). */
  readonly unfinished: number;
  /** Over the whole schedule (warm-up included): requests due that the generator never wrote to a socket. */
  readonly neverWritten: number;
  /** The generator's send lag p99 (ms): above ~50 ms it, not the sidecar, bent the latency. */
  readonly sendLagP99Ms: number | null;
  /** sidecar_batch_size over the window: mean items per downstream call, and the calls. */
  readonly meanBatchSize: number | null;
  readonly calls: number | null;
  /** sidecar_requests_total increase by outcome. */
  readonly outcomes: Record<string, number> | null;
  /** % of one core over the window. */
  readonly sidecarCpuPercent: number | null;
  readonly generatorCpuPercent: number;
  readonly limit: LimitFigures | null;
  /** The sidecar's warn-level (and worse) log lines, distinct, the first few. */
  readonly problems: string[];
}

/** The downstream's GET /stats over the measured window (reset when it opened); a field is null where the simulator does not report it. */
export interface DownstreamFigures {
  readonly batches: number | null;
  readonly items: number | null;
  readonly itemsPerSecond: number | null;
  readonly callsPerSecond: number | null;
  /** maxItemsPerSecond(shape, 100): full batches on every worker. */
  readonly capacity: number;
  readonly capacityRatio: number | null;
  readonly queueWaitP50Ms: number | null;
  readonly queueWaitP99Ms: number | null;
  readonly queueWaitMaxMs: number | null;
  /** Hold time (queue wait + work) p99. */
  readonly holdP99Ms: number | null;
  readonly refused: number | null;
  readonly meanBatchSize: number | null;
}

export interface DropFigures extends DropPlan {
  /** When the two POST /control calls were answered, seconds after the window opened. */
  readonly droppedAtS: number | null;
  readonly restoredAtS: number | null;
  readonly series: LimitPoint[];
  /** First sample after the drop with the limit ≤ droppedWorkers + 1, less dropAtS; null: never (before the restore). */
  readonly followsWithinS: number | null;
  /** First sample after the restore with the limit ≥ the workers, less restoreAtS; null: never. */
  readonly recoversWithinS: number | null;
  /** By second of intended send time in the window: 2xx, 503 and the rest. */
  readonly perSecond: { readonly t: number; readonly sent: number; readonly ok: number; readonly shed: number; readonly other: number }[];
}

export interface LimitedRun {
  readonly key: string;
  readonly kind: RunKind;
  readonly shape: Shape;
  readonly variant: VariantName;
  /** Offered rate per sidecar. */
  readonly rate: number;
  /** The sidecar's environment (DOWNSTREAM_URL left out). */
  readonly env: Record<string, string>;
  readonly windowSeconds: number;
  readonly loadAverage: number;
  readonly sides: SideFigures[];
  readonly downstream: DownstreamFigures | null;
  readonly drop: DropFigures | null;
}

export interface LimitedResults {
  readonly date: string;
  readonly quick: boolean;
  readonly cpus: number;
  readonly loadAverageAtStart: number;
  readonly loadAverageAtEnd: number;
  readonly wallSeconds: number;
  readonly connections: number;
  readonly durationsSeconds: { readonly warmup: number; readonly measure: number; readonly drop: number; readonly drain: number };
  /** The commit the base variant ran (null when it did not run). */
  readonly baseRef: string | null;
  readonly selected: { readonly shapes: string[]; readonly variants: VariantName[] };
  readonly shapes: (Shape & { readonly capacity: number })[];
  readonly runs: LimitedRun[];
  readonly problems: string[];
}

export interface Verdict {
  readonly run: string;
  readonly name: string;
  readonly result: string;
  readonly target: string;
  /** null: could not be judged (a figure is missing). */
  readonly pass: boolean | null;
}
