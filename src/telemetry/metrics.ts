/**
 * Prometheus metrics for /metrics, with prom-client (chosen over OpenTelemetry
 * metrics by measured cost on the per-request path: ADR 0008).
 *
 * Per request the service does two things here: one counter increment on a
 * label child bound at startup, and, for items that went downstream, one
 * histogram observation. Queue depth, in-flight, window and phase gauges cost
 * nothing per request: they are read when Prometheus scrapes.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BatchOutcome, Trigger } from '../actors/batch.ts';
import type { ShardStats } from '../actors/batcher.ts';
import { PHASES, type Phase } from '../lifecycle.ts';
import { ProcessMetrics } from './process-metrics.ts';

/** What happened to a request; the `outcome` label of sidecar_requests_total. */
export type Outcome =
  | 'ok'
  | 'bad_request'
  | 'too_large'
  | 'unsupported_media_type'
  | 'queue_full'
  | 'queue_wait'
  | 'overloaded'
  | 'draining'
  | 'shutdown_timeout'
  | 'downstream_error'
  | 'timeout'
  | 'item_rejected'
  | 'internal';

export const OUTCOMES: readonly Outcome[] = [
  'ok',
  'bad_request',
  'too_large',
  'unsupported_media_type',
  'queue_full',
  'queue_wait',
  'overloaded',
  'draining',
  'shutdown_timeout',
  'downstream_error',
  'timeout',
  'item_rejected',
  'internal',
];

const TRIGGERS: readonly Trigger[] = ['size', 'time', 'drain'];

/** The outcome of an error answer, from its code and status. */
export function outcomeOf(code: string, statusCode: number): Outcome {
  switch (code) {
    case 'SIDECAR_ERR_QUEUE_FULL':
      return 'queue_full';
    case 'SIDECAR_ERR_QUEUE_WAIT':
      return 'queue_wait';
    case 'SIDECAR_ERR_OVERLOADED':
      return 'overloaded';
    case 'SIDECAR_ERR_DRAINING':
      return 'draining';
    case 'SIDECAR_ERR_SHUTDOWN_TIMEOUT':
      return 'shutdown_timeout';
    case 'SIDECAR_ERR_ITEM_REJECTED':
      return 'item_rejected';
  }
  if (statusCode === 413) return 'too_large';
  if (statusCode === 415) return 'unsupported_media_type';
  if (statusCode === 502) return 'downstream_error';
  if (statusCode === 504) return 'timeout';
  if (statusCode >= 400 && statusCode < 500) return 'bad_request';
  return 'internal';
}

/** What the admission-control gauge reads at scrape time (src/http/admission.ts). */
export interface AdmissionSignals {
  readonly overloaded: boolean;
}

/** Batch-size buckets: 1, 2, 5, then ten steps up to BATCH_MAX_SIZE. */
export function batchSizeBuckets(batchMaxSize: number): number[] {
  const buckets = new Set([1, 2, 5].filter((size) => size < batchMaxSize));
  const step = Math.max(1, Math.ceil(batchMaxSize / 10));
  for (let size = step; size < batchMaxSize; size += step) buckets.add(size);
  buckets.add(batchMaxSize);
  return [...buckets].sort((a, b) => a - b);
}

/** Overhead is milliseconds; the 15 ms target is a bucket edge. */
const OVERHEAD_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1];
/** Edge waits: from a few ms in a balancer's queue to the default 10 s deadline. */
const EDGE_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DOWNSTREAM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One child per label value, each exported as 0 from the start (so rates and alerts see every series). */
function boundChildren<Label extends string>(counter: Counter, values: readonly Label[]): Record<Label, Counter.Internal> {
  const children = {} as Record<Label, Counter.Internal>;
  for (const value of values) {
    children[value] = counter.labels(value);
    children[value].inc(0);
  }
  return children;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Record<Outcome, Counter.Internal>;
  private readonly requestCounter: Counter;
  private readonly batches: Record<Trigger, Counter.Internal>;
  private readonly batchSize: Histogram;
  private readonly downstreamDuration: Histogram;
  private readonly overhead: Histogram;
  private readonly edgeWait: Histogram;
  private readonly processMetrics: ProcessMetrics | null;

  /**
   * Every metric of SPEC §7 for the sources given. In INGRESS_THREADS mode
   * each ingress thread has its own Metrics with the per-request ones only (no
   * shard, phase or process sources) and the batcher thread merges them all
   * into one exposition (src/ingress, ADR 0017): counters and histograms add
   * up, and each gauge is exported by the one thread that owns its source,
   * except the admission gauges, which every thread has and which merge as
   * their maximum (the most loaded thread).
   */
  constructor(options: {
    batchMaxSize: number;
    /** The shards (queue depth, in-flight, window gauges); none on an ingress thread. */
    stats?: () => ShardStats[];
    /** The downstream call limit in force, all shards; with `stats`. */
    callLimit?: () => number;
    /** The lifecycle phase gauge; none on an ingress thread. */
    phase?: () => Phase;
    admission?: () => AdmissionSignals | null;
    /** prom-client's process metrics (CPU, memory, event loop); on by default. */
    processMetrics?: boolean;
  }) {
    const registers = [this.registry];
    this.processMetrics = options.processMetrics === false ? null : new ProcessMetrics(this.registry);
    const requests = new Counter({
      name: 'sidecar_requests_total',
      help: 'Requests to POST /process by outcome',
      labelNames: ['outcome'],
      registers,
    });
    // Bound once: per request, an increment on a child, no label lookup.
    this.requests = boundChildren(requests, OUTCOMES);
    this.requestCounter = requests;
    const batches = new Counter({
      name: 'sidecar_batches_total',
      help: 'Batches sent downstream, by what sealed them',
      labelNames: ['trigger'],
      registers,
    });
    this.batches = boundChildren(batches, TRIGGERS);
    this.batchSize = new Histogram({
      name: 'sidecar_batch_size',
      help: 'Items per batch sent downstream',
      buckets: batchSizeBuckets(options.batchMaxSize),
      registers,
    });
    this.downstreamDuration = new Histogram({
      name: 'sidecar_downstream_duration_seconds',
      help: 'Duration of one downstream batch call, retries included',
      buckets: DOWNSTREAM_BUCKETS,
      registers,
    });
    this.edgeWait = new Histogram({
      name: 'sidecar_edge_wait_seconds',
      help: 'Wait before the sidecar read a request, from its edge stamp (REQUEST_START_HEADER); stamped requests only',
      buckets: EDGE_WAIT_BUCKETS,
      registers,
    });
    this.overhead = new Histogram({
      name: 'sidecar_overhead_seconds',
      help: "Time an item spent in the sidecar minus its batch's downstream call",
      buckets: OVERHEAD_BUCKETS,
      registers,
    });
    const { stats, callLimit, phase, admission } = options;
    if (admission !== undefined) {
      new Gauge({
        name: 'sidecar_admission_overloaded',
        help: 'Admission control: 1 while a standing backlog of edge waits is cut from its old end, else 0 (the largest over ingress threads)',
        registers,
        aggregator: 'max',
        collect() {
          this.set(admission()?.overloaded === true ? 1 : 0);
        },
      });
    }
    if (stats !== undefined) {
      new Gauge({
        name: 'sidecar_queue_depth',
        help: 'Items waiting in a shard (not yet sent downstream)',
        labelNames: ['shard'],
        registers,
        collect() {
          for (const shard of stats()) this.labels(String(shard.shard)).set(shard.waiting);
        },
      });
      new Gauge({
        name: 'sidecar_inflight_batches',
        help: "A shard's batches in flight downstream",
        labelNames: ['shard'],
        registers,
        collect() {
          for (const shard of stats()) this.labels(String(shard.shard)).set(shard.inflight);
        },
      });
      if (callLimit !== undefined) {
        new Gauge({
          name: 'sidecar_downstream_concurrency_limit',
          help: 'Downstream calls allowed in flight now, all shards (learned from the downstream latency, or the fixed total)',
          registers,
          collect() {
            this.set(callLimit());
          },
        });
      }
      new Gauge({
        name: 'sidecar_batch_window_seconds',
        help: "The window a shard's next batch gets (BATCH_MAX_WAIT_MS, or the adaptive window now)",
        labelNames: ['shard'],
        registers,
        collect() {
          for (const shard of stats()) this.labels(String(shard.shard)).set(shard.windowMs / 1000);
        },
      });
    }
    if (phase !== undefined) {
      new Gauge({
        name: 'sidecar_lifecycle_phase',
        help: 'The process phase: 1 for the current one, 0 for the others',
        labelNames: ['phase'],
        registers,
        collect() {
          const current = phase();
          for (const name of PHASES) this.labels(name).set(name === current ? 1 : 0);
        },
      });
    }
  }

  /** Requests counted with `outcome` so far (read at shutdown, not on the request path). */
  async requestCount(outcome: Outcome): Promise<number> {
    const { values } = await this.requestCounter.get();
    return values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
  }

  request(outcome: Outcome): void {
    this.requests[outcome].inc();
  }

  edgeWaitSeconds(seconds: number): void {
    this.edgeWait.observe(seconds);
  }

  overheadSeconds(seconds: number): void {
    this.overhead.observe(seconds);
  }

  /** A batch left for the downstream (the event-loop delay is sampled while batches are out). */
  batchSent(): void {
    this.processMetrics?.batchOut();
  }

  /** A batch settled: its trigger, size and call. */
  batch(outcome: BatchOutcome, downstreamMs: number): void {
    this.processMetrics?.batchBack();
    this.batches[outcome.trigger].inc();
    this.batchSize.observe(outcome.size);
    this.downstreamDuration.observe(downstreamMs / 1000);
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
