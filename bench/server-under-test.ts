/**
 * A server under test in bench/hot-path.ts (the bare route, the floor or the sidecar),
 * started as its own process under `node --trace-gc --import
 * bench/probe-preload.ts`, and what it did in a measured window: CPU and peak
 * RSS from /proc, GC pauses from its trace, event-loop delay from the probe
 * (both variants alike), and for the sidecar its /metrics (overhead
 * histogram, batch sizes, outcomes, prom-client's event-loop delay). For a
 * process with worker threads (the sidecar with INGRESS_THREADS > 1,
 * bench/ingress-threads.ts) also each thread's CPU, each worker's event-loop
 * delay, and GC pauses by isolate.
 */
import { fileURLToPath } from 'node:url';
import type { Exit } from '../sim/sidecar-process.ts';
import { startBare, startFloor, startSidecarChild, type Child, type Sidecar } from './children.ts';
import { GcRecorder, type GcByIsolate, type GcFigures } from './gc-trace.ts';
import * as metrics from './metrics.ts';
import {
  busyCoresBetween,
  cpuBetween,
  sampleMachine,
  sampleProcess,
  sampleThreads,
  threadCpuBetween,
  type MachineSample,
  type ProcSample,
  type ThreadCpu,
  type ThreadSample,
} from './proc.ts';
import { sleep } from './stats.ts';

/** The bare route (no batching), the floor (the least batching route: bench/floor-server.ts), the sidecar. */
export type Variant = 'bare' | 'floor' | 'sidecar';

/** prom-client samples with monitorEventLoopDelay({ resolution: 10 }), as the probe does. */
const EVENT_LOOP_RESOLUTION_MS = 10;

export interface EventLoopFigures {
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

/** A worker thread's event-loop delay over the window (its threadId; the probe's line). */
export interface ThreadEventLoopFigures extends EventLoopFigures {
  readonly thread: number;
}

export interface OverheadQuantiles {
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** The p99 fell in the +Inf bucket: the true value is above p99Ms. */
  readonly p99Overflow: boolean;
}

/** What the server under test did in a measured window (from /proc, --trace-gc and, for the sidecar, /metrics). */
export interface ServerFigures {
  readonly cpuSeconds: number | null;
  readonly peakRssBytes: number | null;
  /** GC pauses of every isolate in the process (with worker threads: all of them, mixed). */
  readonly gc: GcFigures;
  /** The same, the main thread's isolate and the workers' apart (without worker threads: all main). */
  readonly gcByIsolate: GcByIsolate;
  /** Event-loop delay of the main thread over the window, the same probe in both variants (bench/probe-preload.ts). */
  readonly eventLoop: EventLoopFigures | null;
  /** The same probe in each worker thread (INGRESS_THREADS > 1: the ingress threads), by threadId; empty without workers. */
  readonly workerEventLoops: readonly ThreadEventLoopFigures[];
  /** CPU seconds by thread over the window (main, each worker thread, the rest); null when /proc could not be read. */
  readonly threadCpu: ThreadCpu | null;
  /**
   * CPUs busy on average over the window, the whole machine (/proc/stat): less the server and the
   * generator, what the downstream, the bench itself and anything else on the machine took.
   */
  readonly machineBusyCores: number | null;
  /** The sidecar only: prom-client's nodejs_eventloop_lag_* since the previous scrape, as a cross-check. */
  readonly eventLoopMetrics: EventLoopFigures | null;
  readonly overhead: OverheadQuantiles | null;
  readonly callsPer1000: number | null;
  /** The sidecar only: items / batches over the window (sidecar_batch_size _sum / _count deltas). */
  readonly meanBatchSize: number | null;
  /** The sidecar only: sidecar_requests_total increase by outcome over the window. */
  readonly outcomes: Record<string, number> | null;
}

const PROBE = fileURLToPath(new URL('./probe-preload.ts', import.meta.url));

/**
 * The parent's side of bench/probe-preload.ts: SIGUSR2, then the next main
 * thread's probe line on the child's stdout. Worker threads' lines (thread ≠
 * 0) come a little later; each is kept with the number of the ask it answers.
 */
class EventLoopProbe {
  private readonly waiting: ((figures: EventLoopFigures | null) => void)[] = [];
  private asks = 0;
  private readonly workerLines: { ask: number; figures: ThreadEventLoopFigures }[] = [];

  line(line: string): boolean {
    if (!line.startsWith('{"probe":"event-loop"')) return false;
    const figures = JSON.parse(line) as ThreadEventLoopFigures;
    if (figures.thread !== undefined && figures.thread !== 0) this.workerLines.push({ ask: this.asks, figures });
    else this.waiting.shift()?.(figures);
    return true;
  }

  /**
   * The worker threads' lines answering the latest ask: as many as answered
   * the ask before it (the same threads), or what came within `timeoutMs`.
   */
  async workers(timeoutMs = 1000): Promise<ThreadEventLoopFigures[]> {
    const ask = this.asks;
    const expected = this.workerLines.filter((l) => l.ask === ask - 1).length;
    const since = performance.now();
    const answered = (): ThreadEventLoopFigures[] => this.workerLines.filter((l) => l.ask === ask).map((l) => l.figures);
    while (answered().length < expected && performance.now() - since < timeoutMs) await sleep(20);
    return answered().sort((a, b) => a.thread - b.thread);
  }

  ask(pid: number): Promise<EventLoopFigures | null> {
    this.asks++;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      try {
        process.kill(pid, 'SIGUSR2');
      } catch {
        resolve(null);
      }
      setTimeout(() => resolve(null), 3000).unref();
    });
  }
}

export interface Target {
  readonly child: Child | Sidecar;
  readonly gc: GcRecorder;
  readonly probe: EventLoopProbe;
  readonly variant: Variant;
  /** Set when the process exits (before stopTarget: something else ended it). */
  readonly ended: { exit: Exit | null };
}

/** Starts the bare route, the floor or the sidecar (the last two with this environment) under --trace-gc and the event-loop probe. */
export async function startTarget(variant: Variant, env: Record<string, string>): Promise<Target> {
  const gc = new GcRecorder();
  const probe = new EventLoopProbe();
  const options = { nodeArgs: ['--trace-gc', '--import', PROBE], onLine: (line: string) => gc.line(line) || probe.line(line) };
  const child =
    variant === 'bare' ? await startBare(options) : variant === 'floor' ? await startFloor(env, options) : await startSidecarChild(env, options);
  const ended: Target['ended'] = { exit: null };
  void child.exited.then((exit) => (ended.exit = exit));
  return { child, gc, probe, variant, ended };
}

export async function stopTarget(target: Target, label: string, problems: string[]): Promise<void> {
  // An exit before it was asked to stop (a SIGTERM from elsewhere ends either server with code 0).
  if (target.ended.exit !== null) problems.push(`${label}: ${target.variant} had exited before it was stopped ${JSON.stringify(target.ended.exit)}: its figures are void`);
  const exit = await target.child.stop(20_000);
  if (target.variant === 'sidecar') {
    const seen = new Set<string>();
    for (const line of (target.child as Sidecar).problems()) if (!seen.has(line)) seen.add(line);
    for (const line of [...seen].slice(0, 5)) problems.push(`${label}: sidecar logged: ${line}`);
  }
  if (exit.code !== 0) problems.push(`${label}: ${target.variant} exited ${JSON.stringify(exit)}`);
}

/** Samples /proc, the GC trace and /metrics when the measured window opens and closes. */
export class Window {
  private p0: ProcSample | null = null;
  private t0: ThreadSample[] | null = null;
  private t1: ThreadSample[] | null = null;
  private m0: MachineSample | null = null;
  private m1: MachineSample | null = null;
  private g0 = 0;
  private s0: Promise<metrics.Scrape | null> = Promise.resolve(null);
  private p1: ProcSample | null = null;
  private g1 = 0;
  private s1: Promise<metrics.Scrape | null> = Promise.resolve(null);
  private e1: Promise<EventLoopFigures | null> = Promise.resolve(null);
  private readonly target: Target;

  constructor(target: Target) {
    this.target = target;
  }

  /** One scrape before the window (bench/hot-path.ts latencyRun says why); its figures are not used. */
  warm(): void {
    if (this.target.variant === 'sidecar') void metrics.scrape(this.target.child.url);
  }

  open(): void {
    this.p0 = sampleProcess(this.target.child.pid);
    this.t0 = sampleThreads(this.target.child.pid);
    this.m0 = sampleMachine();
    this.g0 = this.target.gc.mark();
    void this.target.probe.ask(this.target.child.pid); // starts the probe's histogram afresh
    if (this.target.variant === 'sidecar') this.s0 = metrics.scrape(this.target.child.url);
  }

  close(): void {
    this.p1 = sampleProcess(this.target.child.pid);
    this.t1 = sampleThreads(this.target.child.pid);
    this.m1 = sampleMachine();
    this.g1 = this.target.gc.mark();
    this.e1 = this.target.probe.ask(this.target.child.pid);
    if (this.target.variant === 'sidecar') this.s1 = metrics.scrape(this.target.child.url);
  }

  async figures(): Promise<ServerFigures> {
    const [before, after, eventLoop] = await Promise.all([this.s0, this.s1, this.e1]);
    const workerEventLoops = await this.target.probe.workers();
    // prom-client samples the event loop with monitorEventLoopDelay({ resolution: 10 }), whose
    // figures include the 10 ms timer interval (an idle loop reads p99 ≈ 10.2 ms): report the delay beyond it.
    const ms = (name: string): number | null => {
      const v = metrics.sum(after, name);
      return v === null ? null : Math.max(0, v * 1000 - EVENT_LOOP_RESOLUTION_MS);
    };
    const h = metrics.histogramDelta(metrics.histogram(before, 'sidecar_overhead_seconds'), metrics.histogram(after, 'sidecar_overhead_seconds'));
    const p50 = metrics.quantile(h, 0.5);
    const p99 = metrics.quantile(h, 0.99);
    const sizes = metrics.histogramDelta(metrics.histogram(before, 'sidecar_batch_size'), metrics.histogram(after, 'sidecar_batch_size'));
    return {
      cpuSeconds: cpuBetween(this.p0, this.p1),
      peakRssBytes: this.p1?.hwmBytes ?? null,
      gc: this.target.gc.window(this.g0, this.g1),
      gcByIsolate: this.target.gc.windowByIsolate(this.g0, this.g1),
      eventLoop,
      workerEventLoops,
      threadCpu: threadCpuBetween(this.t0, this.t1),
      machineBusyCores: busyCoresBetween(this.m0, this.m1),
      eventLoopMetrics: after === null ? null : { p50Ms: ms('nodejs_eventloop_lag_p50_seconds'), p99Ms: ms('nodejs_eventloop_lag_p99_seconds'), maxMs: ms('nodejs_eventloop_lag_max_seconds') },
      overhead: h === null || h.count <= 0 ? null : { p50Ms: p50 === null ? null : p50.value * 1000, p99Ms: p99 === null ? null : p99.value * 1000, p99Overflow: p99?.overflow ?? false },
      callsPer1000: sizes === null || sizes.sum <= 0 ? null : (1000 * sizes.count) / sizes.sum,
      meanBatchSize: sizes === null || sizes.count <= 0 ? null : sizes.sum / sizes.count,
      outcomes: metrics.increaseByLabel(before, after, 'sidecar_requests_total', 'outcome'),
    };
  }
}
