/**
 * The batcher thread's side of INGRESS_THREADS > 1 (ADR 0017): starts the
 * ingress threads (src/ingress/worker.ts), feeds their item groups into the
 * one global Batcher, and is the Batcher's ItemSink, sending each thread its
 * answers as one group per event-loop turn.
 *
 * It is also the process's ingress for the rest of the batcher thread: the
 * lifecycle phases are broadcast to every thread; the shutdown steps (close the listeners, close connections,
 * stop) go to every thread and wait for every thread; /metrics merges every
 * thread's registry with this thread's.
 *
 * A thread that exits when it was not told to stop is fatal: the process
 * shuts down as for SIGTERM (the other threads' requests are drained and
 * answered) and exits 1. The dead thread's connections died with it; its items
 * still queued go downstream, and their answers are dropped.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Counter, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { Batch, Item, ItemSink } from '../actors/batch.ts';
import type { BatchIntake } from '../actors/batcher.ts';
import { SidecarErrors, toWire, type SidecarError, type WireError } from '../errors.ts';
import type { Lifecycle } from '../lifecycle.ts';
import type { Ingress } from '../shutdown.ts';
import type { Metrics, Outcome } from '../telemetry/metrics.ts';
import {
  AnswerGroupWriter,
  Calls,
  ownerOf,
  readItems,
  SLOTS_PER_THREAD,
  type IngressWorkerData,
  type ItemGroup,
  type ToBatcher,
  type ToIngress,
} from './wire.ts';

/** One registry's metrics as getMetricsAsJSON gives them (what an ingress thread sends). */
type ThreadMetrics = MetricObjectWithValues<MetricValue<string>>[];

const WORKER_URL = new URL('./worker.ts', import.meta.url);
/** Each thread's part of a merged /metrics must come within this. */
const METRICS_TIMEOUT_MS = 2_000;
/** Bound on a thread's answer that its listener has closed (it waits at most 200 ms itself). */
const LISTENER_CLOSE_TIMEOUT_MS = 1_000;

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: Error) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  promise.catch(() => undefined); // rejected only when the thread died; whoever waits hears of it
  return { promise, resolve, reject };
}

class IngressThread {
  readonly index: number;
  readonly worker: Worker;
  readonly answers = new AnswerGroupWriter();
  readonly calls = new Calls();
  readonly listening = deferred<number>();
  readonly listenerClosed = deferred<void>();
  readonly connectionsClosed = deferred<void>();
  readonly exited = deferred<void>();
  alive = true;
  /** Told to stop: its exit is expected. */
  stopping = false;
  /** Why it failed, if it threw. */
  failure: Error | null = null;

  constructor(index: number, url: URL) {
    this.index = index;
    const workerData: IngressWorkerData = { index, batcherTimeOrigin: performance.timeOrigin };
    this.worker = new Worker(url, { workerData });
  }

  post(message: ToIngress, transfer?: ArrayBuffer[]): void {
    if (this.alive) this.worker.postMessage(message, transfer);
  }
}

export interface IngressThreadsOptions {
  readonly count: number;
  readonly log: Logger;
  readonly lifecycle: Lifecycle;
  /** This thread's registry (batch, shard, phase and process metrics), merged with the ingress threads'. */
  readonly metrics: Metrics;
  /** An ingress thread died: the process must shut down and exit 1. */
  readonly onFatal: (error: Error) => void;
  /** The thread's script: src/ingress/worker.ts (tests pass their own). */
  readonly workerUrl?: URL;
}

export class IngressThreads implements Ingress {
  private readonly log: Logger;
  private readonly threads: IngressThread[];
  private readonly metrics: Metrics;
  private readonly onFatal: (error: Error) => void;
  private readonly workerUrl: URL;
  private batcher: BatchIntake | null = null;
  private answersScheduled = false;

  /** Where the Batcher sends every settled item: to its thread's next answer group. */
  readonly sink: ItemSink = {
    resolve: (item: Item, result: unknown, batch: Batch): void => {
      let payload: string;
      try {
        // Serialised here, so the ingress thread only writes the text.
        payload = JSON.stringify(result);
      } catch (error) {
        this.sink.reject(item, new SidecarErrors.SIDECAR_ERR_INTERNAL(`result cannot be serialised: ${String(error)}`), batch);
        return;
      }
      this.answer(item, batch, payload);
    },
    reject: (item: Item, error: SidecarError, batch: Batch | null): void => {
      this.answer(item, batch, toWire(error));
    },
  };

  constructor({ count, log, lifecycle, metrics, onFatal, workerUrl = WORKER_URL }: IngressThreadsOptions) {
    this.log = log;
    this.workerUrl = workerUrl;
    this.metrics = metrics;
    this.onFatal = onFatal;
    this.threads = Array.from({ length: count }, (_, index) => this.spawn(index));
    lifecycle.onChange((phase) => this.broadcast({ type: 'phase', phase }));
  }

  /** The batcher that takes the threads' items (made after this, with `sink`). */
  attach(batcher: BatchIntake): void {
    this.batcher = batcher;
  }

  /**
   * Listens on every thread: the first on `port` (0: any), the others on the
   * port it got, all with `reusePort`. Resolves with the port.
   */
  async listen(port: number, host: string): Promise<number> {
    const [first, ...others] = this.threads;
    first.post({ type: 'listen', port, host });
    const bound = await first.listening.promise;
    for (const thread of others) thread.post({ type: 'listen', port: bound, host });
    await Promise.all(others.map((thread) => thread.listening.promise));
    return bound;
  }

  async close(): Promise<{ closed: Promise<void> }> {
    const live = this.live();
    this.broadcast({ type: 'close' });
    await Promise.race([
      Promise.allSettled(live.map((thread) => thread.listenerClosed.promise)),
      new Promise((resolve) => setTimeout(resolve, LISTENER_CLOSE_TIMEOUT_MS).unref()),
    ]);
    return { closed: Promise.allSettled(live.map((thread) => thread.connectionsClosed.promise)).then(() => undefined) };
  }

  closeIdleConnections(): void {
    this.broadcast({ type: 'close-idle' });
  }

  closeAllConnections(): void {
    this.broadcast({ type: 'close-all' });
  }

  /** Every thread flushes its spans and exits. */
  async stop(): Promise<void> {
    const live = this.live();
    for (const thread of live) thread.stopping = true;
    this.broadcast({ type: 'stop' });
    await Promise.allSettled(live.map((thread) => thread.exited.promise));
  }

  /** One exposition for the process: this thread's registry and every ingress thread's, merged. */
  async exposition(): Promise<string> {
    return (await this.merged()).metrics();
  }

  /** Requests counted with `outcome` so far, over every thread (read at shutdown). */
  async requestCount(outcome: Outcome): Promise<number> {
    const counter = (await this.merged()).getSingleMetric('sidecar_requests_total') as Counter | undefined;
    const values = counter === undefined ? [] : (await counter.get()).values;
    return values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
  }

  private async merged(): Promise<Registry> {
    // A thread that does not answer in time is left out of this exposition.
    const parts = await Promise.all([
      this.metrics.registry.getMetricsAsJSON(),
      ...this.live().map((thread) => thread.calls.call<ThreadMetrics>(thread.worker, 'metrics-json', METRICS_TIMEOUT_MS).catch(() => null)),
    ]);
    return AggregatorRegistry.aggregate(parts.filter((part) => part !== null));
  }

  private live(): IngressThread[] {
    return this.threads.filter((thread) => thread.alive);
  }

  private spawn(index: number): IngressThread {
    const thread = new IngressThread(index, this.workerUrl);
    thread.worker.on('message', (message: ToBatcher) => this.receive(thread, message));
    thread.worker.on('error', (error) => {
      thread.failure = error;
      this.log.fatal({ err: error, ingressThread: index }, 'ingress thread failed');
    });
    thread.worker.on('exit', (code) => {
      thread.alive = false;
      const error = thread.failure ?? new Error(`ingress thread ${index} exited with code ${code}`);
      thread.calls.failAll(error);
      for (const waiting of [thread.listening, thread.listenerClosed, thread.connectionsClosed]) waiting.reject(error);
      thread.exited.resolve();
      if (!thread.stopping) {
        this.log.fatal({ ingressThread: index, code }, 'ingress thread exited: its connections are gone; shutting down');
        this.onFatal(error);
      }
    });
    return thread;
  }

  private receive(thread: IngressThread, message: ToBatcher): void {
    switch (message.type) {
      case 'items':
        this.take(thread, message);
        return;
      case 'call':
        // The only call to this thread: the merged /metrics for an ingress thread's GET /metrics.
        this.exposition().then(
          (value) => thread.post({ type: 'reply', id: message.id, value }),
          (error: unknown) => thread.post({ type: 'reply', id: message.id, value: `# metrics failed: ${String(error)}\n` }),
        );
        return;
      case 'reply':
        thread.calls.settle(message);
        return;
      case 'listening':
        thread.listening.resolve(message.port);
        return;
      case 'listener-closed':
        thread.listenerClosed.resolve();
        return;
      case 'connections-closed':
        thread.connectionsClosed.resolve();
        return;
    }
  }

  /** A thread's items go to their shards; a refusal (queue full, draining) is answered at once. */
  private take(thread: IngressThread, group: ItemGroup): void {
    const batcher = this.batcher!;
    readItems(group, thread.index * SLOTS_PER_THREAD, (shard, item) => {
      const refusal = batcher.submit(shard, item);
      if (refusal === null) return;
      // As in single-thread mode, a shard's own refusal (full, wait too long) names its shard.
      const byShard = refusal.code !== 'SIDECAR_ERR_DRAINING';
      this.queue(thread, ownerOf(item.owner as number).slot, byShard ? shard : -1, item, null, toWire(refusal));
    });
  }

  private answer(item: Item, batch: Batch | null, payload: string | WireError): void {
    const { thread, slot } = ownerOf(item.owner as number);
    const target = this.threads[thread];
    if (!target.alive) return; // its connections died with it
    this.queue(target, slot, batch === null ? -1 : batch.shard, item, batch, payload);
  }

  private queue(thread: IngressThread, slot: number, shard: number, item: Item, batch: Batch | null, payload: string | WireError): void {
    let queueMs = -1;
    let downstreamMs = 0;
    let ended = false;
    if (batch !== null && batch.firstSentAt >= 0) {
      queueMs = batch.firstSentAt - item.acceptedAt;
      ended = batch.downstreamMs !== 0;
      // The clock is read only for a call still running (a deadline passed mid-call).
      downstreamMs = batch.downstreamMsAt(batch.answered ? 0 : performance.now());
    }
    thread.answers.add(slot, shard, batch, queueMs, downstreamMs, ended, payload);
    if (!this.answersScheduled) {
      this.answersScheduled = true;
      setImmediate(() => this.sendAnswers());
    }
  }

  private sendAnswers(): void {
    this.answersScheduled = false;
    for (const thread of this.threads) {
      if (thread.answers.size === 0) continue;
      const group = thread.answers.take();
      thread.post(group, [group.meta.buffer]);
    }
  }

  /** To every live thread, after the answers of this turn (so a control message never overtakes one). */
  private broadcast(message: ToIngress): void {
    this.sendAnswers();
    for (const thread of this.threads) thread.post(message);
  }
}
