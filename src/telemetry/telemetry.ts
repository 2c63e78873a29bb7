/**
 * Telemetry as the rest of the service sees it: the batch observer (a span,
 * three metrics and a debug log line per batch), the per-request metrics, and
 * the flush at shutdown. Everything OpenTelemetry or Prometheus lives in
 * src/telemetry; the actors only know the BatchObserver interface.
 */
import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Batch, BatchObserver, BatchOutcome } from '../actors/batch.ts';
import type { ShardStats } from '../actors/batcher.ts';
import type { Phase } from '../lifecycle.ts';
import { Metrics, type AdmissionSignals } from './metrics.ts';
import { Tracing } from './tracing.ts';

export interface TelemetryOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: Logger;
  readonly batchMaxSize: number;
}

export class Telemetry implements BatchObserver {
  readonly metrics: Metrics;
  readonly tracing: Tracing | null;
  private readonly log: Logger;
  private shardStats: () => ShardStats[] = () => [];
  private callLimit: () => number = () => 0;
  private phase: () => Phase = () => 'starting';
  private admission: AdmissionSignals | null = null;

  private constructor(log: Logger, tracing: Tracing | null, batchMaxSize: number) {
    this.log = log;
    this.tracing = tracing;
    this.metrics = new Metrics({
      batchMaxSize,
      stats: () => this.shardStats(),
      callLimit: () => this.callLimit(),
      phase: () => this.phase(),
      admission: () => this.admission,
    });
  }

  static async start({ env, log, batchMaxSize }: TelemetryOptions): Promise<Telemetry> {
    const tracing = await Tracing.start(env);
    log.info({ tracing: tracing !== null }, tracing ? 'tracing on (OTLP)' : 'tracing off: no exporter configured');
    return new Telemetry(log, tracing, batchMaxSize);
  }

  /** Where the queue-depth, in-flight, window and call-limit gauges read from at scrape time. */
  observeShards(stats: () => ShardStats[], callLimit: () => number): void {
    this.shardStats = stats;
    this.callLimit = callLimit;
  }

  /** Where the lifecycle-phase gauge reads from at scrape time. */
  observeLifecycle(phase: () => Phase): void {
    this.phase = phase;
  }

  /** Where the admission-control gauges read from at scrape time. */
  observeAdmission(admission: AdmissionSignals): void {
    this.admission = admission;
  }

  dispatching(batch: Batch): Readonly<Record<string, string>> | undefined {
    this.metrics.batchSent();
    if (this.tracing === null) return undefined;
    const { span, headers } = this.tracing.startBatchSpan(batch);
    batch.observation = span;
    return headers;
  }

  settled(batch: Batch, outcome: BatchOutcome): void {
    this.metrics.batch(outcome, batch.downstreamMs);
    if (this.tracing !== null && batch.observation !== null) this.tracing.endBatchSpan(batch.observation as Span, outcome);
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug(
        {
          batch: batch.id,
          shard: batch.shard,
          size: outcome.size,
          trigger: outcome.trigger,
          status: outcome.status,
          downstreamMs: Math.round(batch.downstreamMs * 10) / 10,
          error: outcome.error?.code,
        },
        'batch settled',
      );
    }
  }

  /** Exports the spans still buffered; called last in the shutdown sequence. */
  async flush(): Promise<void> {
    await this.tracing?.shutdown();
  }
}
