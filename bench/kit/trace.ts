/**
 * What a traced server under test says about itself on its stdout
 * (bench/kit/launcher.ts starts it under `node --trace-gc --import
 * bench/kit/probe-preload.ts`), read on the parent's side:
 *
 * - GC pauses, from `--trace-gc` lines. Node 24 (V8 13) prints, e.g.
 *     [4693:0x7fa7000]  31 ms: Scavenge 4.8 (5.8) -> 4.4 (6.8) MB, pooled: 0 MB, 3.61 / 0.00 ms  (...) allocation failure;
 *   the first figure after "MB," (past "pooled: N MB,") is the main-thread
 *   pause in ms; the kind is what stands between "ms:" and the heap sizes. In
 *   a process with worker threads the isolates are told apart by address, the
 *   first seen taken as the main thread's. Marks cut out the measured window.
 * - Event-loop delay: SIGUSR2 makes the probe print one line per thread,
 *   {"probe":"event-loop","thread":0,...}, the main thread's first; the
 *   workers' (thread ≠ 0) come a little later and are kept by ask.
 */
import { percentiles, sleep } from './stats.ts';

export type GcPause = { readonly kind: string; readonly ms: number };
export type GcKindFigures = { readonly count: number; readonly totalMs: number; readonly p99Ms: number; readonly maxMs: number };

/** Pauses by kind over a window, plus all kinds together under "all". */
export type GcFigures = Record<string, GcKindFigures>;

/** Pauses of the main thread's isolate and of every other (worker threads'), apart. */
export type GcByIsolate = { readonly main: GcFigures; readonly workers: GcFigures };

const GC_LINE = /^\[\d+:(0x[0-9a-f]+)\]\s+[\d.]+ ms: (.+?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

/** The pause in one --trace-gc line; null for any other line (a pino log line, say). */
export function parseGcLine(line: string): GcPause | null {
  const match = GC_LINE.exec(line);
  return match === null ? null : { kind: match[2]!.trim(), ms: Number(match[3]) };
}

export function summariseGc(pauses: readonly GcPause[]): GcFigures {
  const byKind = new Map<string, number[]>();
  for (const pause of pauses) {
    for (const kind of [pause.kind, 'all']) {
      if (!byKind.has(kind)) byKind.set(kind, []);
      byKind.get(kind)!.push(pause.ms);
    }
  }
  const out: GcFigures = {};
  for (const [kind, list] of byKind) {
    const p = percentiles(Float64Array.from(list))!;
    out[kind] = { count: p.count, totalMs: p.mean * p.count, p99Ms: p.p99, maxMs: p.max };
  }
  return out;
}

/** Collects pauses from a process's stdout lines; `line` answers whether the line was a GC line. */
export class GcRecorder {
  readonly pauses: GcPause[] = [];
  private readonly isolates: string[] = [];

  line(line: string): boolean {
    const pause = parseGcLine(line);
    if (pause === null) return false;
    this.pauses.push(pause);
    this.isolates.push(GC_LINE.exec(line)![1]!);
    return true;
  }

  /** A position to cut a window at later. */
  mark(): number {
    return this.pauses.length;
  }

  window(from: number, to = this.pauses.length): GcFigures {
    return summariseGc(this.pauses.slice(from, to));
  }

  windowByIsolate(from: number, to = this.pauses.length): GcByIsolate {
    const main = this.isolates[0];
    const [mine, others]: GcPause[][] = [[], []];
    for (let i = from; i < to; i++) (this.isolates[i] === main ? mine : others).push(this.pauses[i]!);
    return { main: summariseGc(mine), workers: summariseGc(others) };
  }
}

export type EventLoopFigures = { readonly p50Ms: number | null; readonly p99Ms: number | null; readonly maxMs: number | null };
export type ThreadEventLoopFigures = EventLoopFigures & { readonly thread: number };

/** The parent's side of bench/kit/probe-preload.ts. */
export class EventLoopProbe {
  private readonly waiting: ((figures: EventLoopFigures | null) => void)[] = [];
  private asks = 0;
  private readonly workerLines: { ask: number; figures: ThreadEventLoopFigures }[] = [];

  line(line: string): boolean {
    if (!line.startsWith('{"probe":"event-loop"')) return false;
    const figures = JSON.parse(line) as ThreadEventLoopFigures;
    if (figures.thread !== 0) this.workerLines.push({ ask: this.asks, figures });
    else this.waiting.shift()?.(figures);
    return true;
  }

  /** SIGUSR2, then the main thread's line (null after 3 s); the histograms start afresh. */
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

  /** The worker threads' lines answering the latest ask: as many as answered the one before, or what came within `timeoutMs`. */
  async workers(timeoutMs = 1000): Promise<ThreadEventLoopFigures[]> {
    const ask = this.asks;
    const expected = this.workerLines.filter((l) => l.ask === ask - 1).length;
    const answered = (): ThreadEventLoopFigures[] => this.workerLines.filter((l) => l.ask === ask).map((l) => l.figures);
    for (const since = performance.now(); answered().length < expected && performance.now() - since < timeoutMs; ) await sleep(20);
    return answered().sort((a, b) => a.thread - b.thread);
  }
}
