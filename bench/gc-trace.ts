/**
 * GC pauses of a server under test, from the lines `node --trace-gc` prints on
 * its stdout. Node 24 (V8 13) prints, e.g.:
 *
 *   [4693:0x7fa7000]       31 ms: Scavenge 4.8 (5.8) -> 4.4 (6.8) MB, pooled: 0 MB, 3.61 / 0.00 ms  (average mu = 1.000, ...) allocation failure;
 *   [4701:0xbc3a000]       19 ms: Mark-Compact 3.9 (5.8) -> 3.7 (6.5) MB, pooled: 0 MB, 3.79 / 0.00 ms  (...) testing; GC in old space requested
 *
 * The first figure after "MB," (past the optional "pooled: N MB,") is the
 * pause on the main thread in ms; the second is time spent in external
 * callbacks. Kinds seen: Scavenge, Minor Mark-Sweep (Minor MS), Mark-Compact,
 * Mark-Compact (reduce); the kind is whatever stands between "ms:" and the
 * heap sizes. A `GcRecorder` keeps the parsed pauses in arrival order, so the
 * parent can cut out the measured window by marking positions at its start
 * and end (the pipe's delay, well under a millisecond, is the only error).
 */
import { percentiles } from './stats.ts';

export interface GcPause {
  readonly kind: string;
  readonly ms: number;
}

const LINE = /^\[\d+:0x[0-9a-f]+\]\s+[\d.]+ ms: (.+?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

/** The pause in one --trace-gc line; null for any other line (a pino log line, say). */
export function parseGcLine(line: string): GcPause | null {
  const match = LINE.exec(line);
  if (match === null) return null;
  return { kind: match[1]!.trim(), ms: Number(match[2]) };
}

export interface GcKindFigures {
  readonly count: number;
  readonly totalMs: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Pauses by kind over a window, plus all kinds together under "all". */
export type GcFigures = Record<string, GcKindFigures>;

export function summariseGc(pauses: readonly GcPause[]): GcFigures {
  const byKind = new Map<string, number[]>();
  for (const pause of pauses) {
    for (const kind of [pause.kind, 'all']) {
      let list = byKind.get(kind);
      if (list === undefined) byKind.set(kind, (list = []));
      list.push(pause.ms);
    }
  }
  const out: GcFigures = {};
  for (const [kind, list] of byKind) {
    const p = percentiles(Float64Array.from(list))!;
    out[kind] = { count: p.count, totalMs: p.mean * p.count, p99Ms: p.p99, maxMs: p.max };
  }
  return out;
}

const ISOLATE = /^\[\d+:(0x[0-9a-f]+)\]/;

/** The isolate a --trace-gc line is about (its address, e.g. "0x7fa7000"); null for any other line. */
export function gcIsolate(line: string): string | null {
  return ISOLATE.exec(line)?.[1] ?? null;
}

/** Pauses of the first isolate seen (the main thread's) and of every other (worker threads'), apart. */
export interface GcByIsolate {
  readonly main: GcFigures;
  readonly workers: GcFigures;
}

/**
 * Collects pauses from a process's stdout lines; `line` answers whether the
 * line was a GC line. Each pause stops only its own isolate: in a process with
 * worker threads the trace mixes them, told apart by the isolate's address.
 * The first isolate seen is taken as the main thread's (it starts, and
 * allocates, before any worker exists).
 */
export class GcRecorder {
  readonly pauses: GcPause[] = [];
  /** The isolate of each pause, by position. */
  private readonly isolates: string[] = [];

  line(line: string): boolean {
    const pause = parseGcLine(line);
    if (pause === null) return false;
    this.pauses.push(pause);
    this.isolates.push(gcIsolate(line) ?? '');
    return true;
  }

  /** The window's pauses, main thread's and workers' apart. */
  windowByIsolate(from: number, to = this.pauses.length): GcByIsolate {
    const main = this.isolates[0];
    const mine: GcPause[] = [];
    const others: GcPause[] = [];
    for (let i = from; i < to; i++) (this.isolates[i] === main ? mine : others).push(this.pauses[i]!);
    return { main: summariseGc(mine), workers: summariseGc(others) };
  }

  /** A position to cut a window at later. */
  mark(): number {
    return this.pauses.length;
  }

  window(from: number, to = this.pauses.length): GcFigures {
    return summariseGc(this.pauses.slice(from, to));
  }
}
