/**
 * The batcher: the one seam between an ingress and the shard actors.
 *
 * An ingress (today the Fastify app in src/http; later possibly several ingress
 * threads) does only this per request: `route(key)` to pick a shard, build an
 * Item, `submit(shard, item)`. The answer comes back through the ItemSink given
 * at construction, exactly once per accepted item. Refusals (queue full,
 * draining) are returned at once and nothing is queued.
 *
 * Behind the seam: one ShardQueue per shard holds the items, one shard actor
 * per queue drives batching, and a supervisor actor owns the shard actors and
 * their drain. No xstate event is sent per item (ADR 0002).
 */
import { randomBytes } from 'node:crypto';
import { createActor, toPromise, type Actor } from 'xstate';
import type { Config } from '../config.ts';
import type { Downstream } from '../downstream/client.ts';
import { SidecarErrors, type SidecarError } from '../errors.ts';
import { NO_OBSERVER, type BatchObserver, type Item, type ItemSink } from './batch.ts';
import type { DispatchPolicy } from './dispatch-batch.ts';
import { BatchWindow } from './batch-window.ts';
import { CallGate } from './call-gate.ts';
import type { LimitChange } from './call-limit.ts';
import { ShardRouter } from './routing.ts';
import { ShardQueue } from './shard-queue.ts';
import { supervisorMachine } from './supervisor.machine.ts';

export type BatcherConfig = Pick<
  Config,
  'shardCount' | 'batchMaxSize' | 'batchMaxWaitMs' | 'batchMaxBytes' | 'maxInflightBatches' | 'maxQueuePerShard'
> &
  Partial<
    Pick<
      Config,
      'itemErrorField' | 'isolateFailedBatches' | 'batchWindowMode' | 'batchMinWaitMs' | 'downstreamConcurrency' | 'maxQueueWaitMs'
    >
  >;

export interface BatcherOptions {
  readonly config: BatcherConfig;
  readonly downstream: Downstream;
  readonly sink: ItemSink;
  /** Telemetry for each batch (spans, metrics); none by default. */
  readonly observer?: BatchObserver;
  /** Monotonic clock in ms; tests with fake timers pass their own. */
  readonly now?: () => number;
  /**
   * The batcher cannot go on (the supervisor failed). Every item held has been
   * answered (500) by then; the process should exit and be restarted.
   */
  readonly onFatal?: (error: unknown) => void;
  /** Each change of the adaptive downstream call limit (main.ts logs it at debug). */
  readonly onLimitChange?: (change: LimitChange) => void;
}

export interface ShardStats {
  readonly shard: number;
  readonly waiting: number;
  readonly inflight: number;
  /** The window a batch opened now would get, ms (sidecar_batch_window_seconds). */
  readonly windowMs: number;
}

/** What the shards hold at one moment (the shutdown log lines). */
export interface Holdings {
  /** Items not answered yet: waiting, and in calls in flight. */
  readonly items: number;
  /** Downstream calls in flight. */
  readonly calls: number;
}

/**
 * What an ingress needs of the batcher for each request: pick the shard, hand
 * the item over. The Batcher itself, or, on an ingress thread, its stand-in
 * that sends items to the batcher thread (src/ingress/worker.ts, ADR 0017).
 */
export interface BatchIntake {
  route(key: Uint8Array | undefined): number;
  /** null when the item was taken (its answer comes through the ItemSink), else why it was refused. */
  submit(shard: number, item: Item): SidecarError | null;
}

export class Batcher implements BatchIntake {
  readonly shardCount: number;
  private readonly queues: ShardQueue[];
  private readonly gate: CallGate;
  private readonly supervisor: Actor<typeof supervisorMachine>;
  private readonly router: ShardRouter;
  private accepting = true;

  constructor({
    config,
    downstream,
    sink,
    observer = NO_OBSERVER,
    now = () => performance.now(),
    onFatal = (error) => {
      throw error;
    },
    onLimitChange,
  }: BatcherOptions) {
    this.shardCount = config.shardCount;
    this.router = new ShardRouter(config.shardCount);
    const batchIdPrefix = randomBytes(4).toString('hex');
    const policy: DispatchPolicy = Object.freeze({
      itemErrorField: config.itemErrorField ?? null,
      isolateFailedBatches: config.isolateFailedBatches ?? false,
    });
    this.gate = new CallGate({
      mode: config.downstreamConcurrency ?? 'adaptive',
      shardCount: config.shardCount,
      maxInflightBatches: config.maxInflightBatches,
      batchMaxSize: config.batchMaxSize,
      onLimitChange,
    });
    this.queues = Array.from(
      { length: config.shardCount },
      (_, index) =>
        new ShardQueue({
          index,
          batchMaxSize: config.batchMaxSize,
          batchMaxBytes: config.batchMaxBytes,
          maxQueue: config.maxQueuePerShard,
          maxQueueWaitMs: config.maxQueueWaitMs ?? Infinity,
          gate: this.gate,
          batchIdPrefix,
          sink,
          now,
          window: new BatchWindow({
            mode: config.batchWindowMode ?? 'fixed',
            minMs: config.batchMinWaitMs ?? config.batchMaxWaitMs,
            maxMs: config.batchMaxWaitMs,
            maxInflight: config.maxInflightBatches,
            now,
          }),
        }),
    );
    this.supervisor = createActor(supervisorMachine, {
      input: {
        shards: this.queues.map((queue) => ({
          queue,
          downstream,
          observer,
          policy,
        })),
      },
    });
    this.supervisor.subscribe({
      error: (error) => {
        this.rejectAll(new SidecarErrors.SIDECAR_ERR_INTERNAL('batcher failed'));
        onFatal(error);
      },
    });
  }

  start(): this {
    this.supervisor.start();
    return this;
  }

  /** The shard for a key's bytes (murmurhash3 mod N); items without a key are spread round-robin. */
  route(key: Uint8Array | undefined): number {
    return this.router.route(key);
  }

  /** Queues the item on its shard, or says at once why it was refused (nothing queued then). */
  submit(shard: number, item: Item): SidecarError | null {
    if (!this.accepting) return new SidecarErrors.SIDECAR_ERR_DRAINING();
    const queue = this.queues[shard];
    const offer = queue.offer(item);
    if (offer === 'taken') return null;
    const refusal: SidecarError =
      offer === 'full' ? new SidecarErrors.SIDECAR_ERR_QUEUE_FULL(shard) : new SidecarErrors.SIDECAR_ERR_QUEUE_WAIT(shard);
    refusal.retryAfterSeconds = queue.drainSeconds();
    return refusal;
  }

  /**
   * Stops taking items, has every shard send what it holds, and resolves once
   * every shard has reached its final state (every accepted item answered).
   */
  async drain(): Promise<void> {
    this.accepting = false;
    this.supervisor.send({ type: 'supervisor.drain' });
    await toPromise(this.supervisor);
  }

  /** Answers every item still held with `error` and aborts calls in flight; returns how many. */
  rejectAll(error: SidecarError): number {
    this.accepting = false;
    let count = 0;
    for (const queue of this.queues) count += queue.rejectAll(error);
    return count;
  }

  /** Downstream calls allowed in flight now, all shards (sidecar_downstream_concurrency_limit). */
  get callLimit(): number {
    return this.gate.limit;
  }

  stats(): ShardStats[] {
    return this.queues.map((queue) => ({
      shard: queue.index,
      waiting: queue.waiting,
      inflight: queue.inflight.size,
      windowMs: queue.window.currentMs,
    }));
  }

  /** Items not answered yet and calls in flight, over every shard. */
  holdings(): Holdings {
    let items = 0;
    let calls = 0;
    for (const queue of this.queues) {
      items += queue.waiting + queue.inflightItems;
      calls += queue.inflight.size;
    }
    return { items, calls };
  }

  /** Items sealed into batches by the drain trigger so far. */
  drainFlushed(): number {
    let count = 0;
    for (const queue of this.queues) count += queue.drainFlushed;
    return count;
  }

  /** Stops the actors and timers without draining (tests, and after the shutdown timeout). */
  stop(): void {
    this.accepting = false;
    for (const queue of this.queues) queue.stop();
    this.supervisor.stop();
  }
}
