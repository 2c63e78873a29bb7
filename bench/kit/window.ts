/**
 * The bench's one way to read what a server under test did in a measured
 * window: mark it when the window opens and when it closes, then ask for the
 * figures. CPU (by thread too) and peak RSS from /proc (bench/kit/proc.ts),
 * GC pauses and event-loop delay when the server is traced
 * (bench/kit/trace.ts), and the sidecar's /metrics (sim/scrape.ts): the
 * overhead histogram, batch sizes, outcomes, the batch window.
 */
import type { Child } from './launcher.ts';
import * as metrics from '../../sim/scrape.ts';
import { cpuBetween, sampleProcess, sampleThreads, threadCpuBetween, type ThreadCpu } from './proc.ts';
import type { EventLoopFigures, GcByIsolate, GcFigures, ThreadEventLoopFigures } from './trace.ts';

interface ServerReadings {
  readonly cpuSeconds: number | null;
  readonly peakRssBytes: number | null;
  /** GC pauses of every isolate together, and the main thread's apart from the workers'; empty when not traced. */
  readonly gc: GcFigures;
  readonly gcByIsolate: GcByIsolate;
  /** Event-loop delay of the main thread (the probe, the same in every variant), and of each worker thread. */
  readonly eventLoop: EventLoopFigures | null;
  readonly workerEventLoops: readonly ThreadEventLoopFigures[];
  /** CPU seconds by thread (main, each worker thread, the rest). */
  readonly threadCpu: ThreadCpu | null;
  /** The sidecar only, from /metrics over the window (null for the others). */
  readonly overhead: { readonly p50Ms: number | null; readonly p99Ms: number | null; readonly p99Overflow: boolean } | null;
  readonly outcomes: Record<string, number> | null;
}

/** batchWindowMs: the mean over the shards of sidecar_batch_window_seconds when the window closed, ms. */
export type ServerFigures = ServerReadings & { readonly [K in 'batches' | 'items' | 'meanBatchSize' | 'callsPer1000' | 'batchWindowMs']: number | null };

export class Window {
  private readonly child: Child;
  private readonly scraped: boolean;
  private marks: { p: ReturnType<typeof sampleProcess>; t: ReturnType<typeof sampleThreads>; g: number; s: Promise<metrics.Scrape | null> }[] = [];
  private endLoop: Promise<EventLoopFigures | null> = Promise.resolve(null);

  /** `scrape`: read the server's /metrics (the sidecar's; the others have none). */
  constructor(child: Child, scrape: boolean) {
    [this.child, this.scraped] = [child, scrape];
  }

  /**
   * One scrape before the window, its figures unused: a sidecar's first
   * /metrics under load disturbs it far more than later ones (ADR 0011), and
   * Prometheus scrapes all the time, so the window measures that steady state.
   */
  warm(): void {
    if (this.scraped) void metrics.scrape(this.child.url);
  }

  private mark(): void {
    const pid = this.child.pid;
    const s = this.scraped ? metrics.scrape(this.child.url) : Promise.resolve(null);
    this.marks.push({ p: sampleProcess(pid), t: sampleThreads(pid), g: this.child.gc?.mark() ?? 0, s });
  }

  open(): void {
    this.marks = [];
    this.mark();
    void this.child.probe?.ask(this.child.pid); // starts the probe's histograms afresh
  }

  close(): void {
    this.mark();
    this.endLoop = this.child.probe?.ask(this.child.pid) ?? Promise.resolve(null);
  }

  async figures(): Promise<ServerFigures> {
    const [a, b] = this.marks;
    if (a === undefined || b === undefined) throw new Error('Window.figures() before open() and close()');
    const [before, after, eventLoop] = await Promise.all([a.s, b.s, this.endLoop]);
    const workerEventLoops = (await this.child.probe?.workers()) ?? [];
    const h = metrics.histogramDelta(metrics.histogram(before, 'sidecar_overhead_seconds'), metrics.histogram(after, 'sidecar_overhead_seconds'));
    const [p50, p99] = [metrics.quantile(h, 0.5), metrics.quantile(h, 0.99)];
    const sizes = metrics.histogramDelta(metrics.histogram(before, 'sidecar_batch_size'), metrics.histogram(after, 'sidecar_batch_size'));
    const gc = this.child.gc;
    const windows = Object.values(metrics.byLabel(after, 'sidecar_batch_window_seconds', 'shard') ?? {});
    return {
      cpuSeconds: cpuBetween(a.p, b.p),
      peakRssBytes: b.p?.hwmBytes ?? null,
      gc: gc?.window(a.g, b.g) ?? {},
      gcByIsolate: gc?.windowByIsolate(a.g, b.g) ?? { main: {}, workers: {} },
      eventLoop,
      workerEventLoops,
      threadCpu: threadCpuBetween(a.t, b.t),
      overhead: h === null || h.count <= 0 ? null : { p50Ms: p50 === null ? null : p50.value * 1000, p99Ms: p99 === null ? null : p99.value * 1000, p99Overflow: p99?.overflow ?? false },
      batches: sizes?.count ?? null,
      items: sizes?.sum ?? null,
      meanBatchSize: sizes === null || sizes.count <= 0 ? null : sizes.sum / sizes.count,
      callsPer1000: sizes === null || sizes.sum <= 0 ? null : (1000 * sizes.count) / sizes.sum,
      outcomes: metrics.increaseByLabel(before, after, 'sidecar_requests_total', 'outcome'),
      batchWindowMs: windows.length === 0 ? null : (1000 * windows.reduce((a, b) => a + b, 0)) / windows.length,
    };
  }
}
