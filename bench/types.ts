/** The shape of bench/results/latest.json. */
import type { ClosedLoopResult } from './closed-loop.ts';
import type { OpenLoopResult } from './open-loop.ts';

export interface ProcFigures {
  /** CPU seconds (user + system) used in the measured window. */
  readonly cpuSeconds: number | null;
  /** cpuSeconds / window seconds × 100 (100 = one core). */
  readonly cpuPercent: number | null;
  readonly rssBytes: number | null;
  /** VmHWM: the process's peak RSS so far (for the bench process: null). */
  readonly peakRssBytes: number | null;
}

export interface BatchFigures {
  /** Where the figures come from: the sidecar's /metrics, the x-batch-id headers, or nowhere. */
  readonly source: 'metrics' | 'x-batch-id' | null;
  readonly batches: number;
  readonly items: number;
  readonly meanBatchSize: number | null;
  /** Downstream calls per 1,000 requests. */
  readonly callsPer1000: number | null;
  /** sidecar_batches_total increase by trigger; null without /metrics. */
  readonly triggers: Record<string, number> | null;
  /** sidecar_requests_total increase by outcome; null without /metrics. */
  readonly outcomes: Record<string, number> | null;
  /** The same from the client's view (x-batch-id), as a cross-check. */
  readonly client: { readonly batches: number; readonly items: number; readonly meanBatchSize: number | null; readonly callsPer1000: number | null };
}

export interface QuantileMs {
  readonly ms: number;
  /** In the +Inf bucket: the value is above `ms`. */
  readonly overflow: boolean;
}

/** sidecar_overhead_seconds over the measured window (difference of two scrapes). */
export interface OverheadFigures {
  readonly count: number;
  readonly meanMs: number | null;
  readonly p50: QuantileMs | null;
  readonly p99: QuantileMs | null;
  readonly p999: QuantileMs | null;
}

export interface ThroughputSide {
  readonly kind: 'sidecar' | 'traced' | 'bare';
  readonly closed: ClosedLoopResult;
  readonly batching: BatchFigures | null;
  readonly processes: Record<string, ProcFigures>;
}

export interface TracingRound {
  readonly off: ThroughputSide;
  readonly on: ThroughputSide;
  readonly ratio: number | null;
}

export interface LatencyFigures {
  readonly rate: number;
  readonly batchMaxWaitMs: number;
  readonly targetMs: number;
  readonly sidecar: {
    readonly open: OpenLoopResult;
    readonly overhead: OverheadFigures | null;
    readonly batching: BatchFigures;
    readonly processes: Record<string, ProcFigures | null>;
  };
  readonly bare: { readonly open: OpenLoopResult; readonly processes: Record<string, ProcFigures | null> };
  /** overhead p99 <= target; null when the sidecar has no overhead histogram yet. */
  readonly pass: boolean | null;
}

export interface EfficiencyStep {
  readonly offeredRate: number;
  /** The rate asked for (higher than offeredRate when capped to what the machine sustains). */
  readonly requestedRate: number;
  readonly open: OpenLoopResult;
  readonly batching: BatchFigures;
  readonly overhead: OverheadFigures | null;
  readonly processes: Record<string, ProcFigures | null>;
}

export interface MemoryFigures {
  readonly requests: number;
  readonly downstreamLatencyMs: number;
  readonly sidecarEnv: Record<string, string>;
  /** Requests written to a socket when RSS was read. */
  readonly written: number;
  /** Requests already answered when RSS was read (should be 0: they are all waiting). */
  readonly answeredBeforeStop: number;
  readonly settleMs: number;
  readonly idleRssBytes: number | null;
  readonly waitingRssBytes: number | null;
  readonly peakRssBytes: number | null;
  readonly perRequestBytes: number | null;
  readonly downstreamRssBytes: number | null;
  /** Sum of sidecar_queue_depth and sidecar_inflight_batches at that moment (null without /metrics). */
  readonly queueDepth: number | null;
  readonly inflightBatches: number | null;
  readonly stop: {
    readonly exitCode: number | null;
    readonly ms: number;
    readonly statuses: Record<string, number>;
    readonly errors: Record<string, number>;
    readonly unfinished: number;
  };
}

export interface ShardFigures {
  readonly shardCount: number;
  readonly rate: number;
  readonly open: OpenLoopResult;
  readonly batching: BatchFigures;
  readonly overhead: OverheadFigures | null;
  readonly processes: Record<string, ProcFigures | null>;
}

/** One sidecar's run in the fixed-vs-adaptive window phase. */
export interface WindowSide {
  readonly mode: 'fixed' | 'adaptive';
  readonly open: OpenLoopResult;
  readonly overhead: OverheadFigures | null;
  readonly batching: BatchFigures;
  /** Mean over the shards of sidecar_batch_window_seconds just after the last request was sent, ms. */
  readonly windowMs: number | null;
  /** Client p99 − the downstream's latency − the bare route's client p99 at the same rate, ms (SPEC §10). */
  readonly addedP99Ms: number | null;
  /** Client p99 of every round of this mode at this rate, ms; this side is the median one. */
  readonly p99RoundsMs: (number | null)[];
  /** Calls per 1,000 requests of every round, and over all rounds together (the figure compared). */
  readonly callsPer1000Rounds: (number | null)[];
  readonly pooledCallsPer1000: number | null;
  readonly processes: Record<string, ProcFigures | null>;
}

export interface WindowStep {
  /** room: a downstream that takes far more calls than needed; bottleneck: slow, with few slots that fill. */
  readonly scenario: 'room' | 'bottleneck';
  readonly rate: number;
  readonly downstreamLatencyMs: number;
  readonly maxInflightBatches: number;
  /** The bare Fastify route's client p99 at the same rate, ms. */
  readonly bareP99Ms: number | null;
  readonly fixed: WindowSide;
  readonly adaptive: WindowSide;
}

export interface WindowFigures {
  readonly sidecarEnv: Record<string, string>;
  readonly steps: WindowStep[];
  /** Added p99 at 1,000 req/s with room, fixed − adaptive, ms (goal: ≥ 5). */
  readonly latencyGainAt1000Ms: number | null;
  /** Calls per 1,000 requests at the bottleneck over all rounds, adaptive − fixed (goal: ≤ 0). */
  readonly bottleneckExtraCallsPer1000: number | null;
}

export interface BenchResults {
  readonly meta: {
    readonly date: string;
    readonly quick: boolean;
    readonly commit: string | null;
    readonly node: string;
    readonly cpus: number;
    readonly cpuModel: string;
    readonly loadAverageAtStart: number[];
    readonly loadAverageAtEnd: number[];
    wallSeconds: number;
    readonly closedLoopConnections: number;
    readonly openLoopConnections: number;
    readonly downstreamLatencyMs: number;
    readonly durationsSeconds: Record<string, number>;
    readonly downstreamPeakRssBytes: number | null;
  };
  readonly throughput: {
    readonly sidecar: ThroughputSide;
    readonly bare: ThroughputSide;
    readonly ratio: number | null;
    readonly target: number;
    readonly pass: boolean | null;
    /** The sidecar with tracing on: every batch span, 1% of request spans, exported over OTLP. */
    readonly traced: ThroughputSide;
    /** Tracing off and on, round by round; `sidecar` and `traced` are the median runs of these. */
    readonly tracingRounds: TracingRound[];
    readonly tracingRatio: number | null;
    readonly tracingTarget: number;
    readonly tracingPass: boolean | null;
    readonly otlpExports: number;
  };
  readonly latency: LatencyFigures;
  readonly efficiency: EfficiencyStep[];
  readonly memory: MemoryFigures;
  readonly shards: { readonly rate: number; readonly configs: ShardFigures[] };
  /** Fixed vs adaptive batch window (phase 6; alone with BENCH_PHASE=window). */
  readonly window?: WindowFigures;
  readonly problems: string[];
  readonly notes: string[];
}
