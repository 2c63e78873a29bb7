/**
 * Simulation behind ADR 0016: one shard's batching, driven by the real
 * BatchWindow controller on a simulated clock, with no machine noise. It
 * models what shard.machine.ts and ShardQueue do with the window (a batch opens
 * on its first item with the window of that moment, seals at its own deadline
 * or at BATCH_MAX_SIZE, dispatch rounds up to MAX_INFLIGHT_BATCHES, sealed
 * batches wait in order), calling the controller at the same points. It does
 * not model the sidecar's CPU: more calls cost nothing here (they do in the
 * bench, bench/run.ts phase 6).
 *
 *   node bench/micro/window-sim.ts
 *
 * For each scenario: the wait each item spends in the sidecar before its call
 * starts (window plus slot wait), p50 / p99, calls per 1,000 items, the mean
 * window of the batches, for fixed mode and for the adaptive law with several
 * periods and steps.
 */
import { BatchWindow, type WindowMode } from '../../src/actors/batch-window.ts';

const BATCH_MAX_SIZE = 100;
const MIN_MS = 1;
const MAX_MS = 10;
const JITTER = 0.2; // downstream latency × (1 ± 0.1)

interface Scenario {
  readonly name: string;
  /** Items per second on this shard, by phase: [until ms, rate]. */
  readonly profile: readonly (readonly [number, number])[];
  readonly latencyMs: number;
  readonly cap: number;
  /** Items arriving before this are left out of the figures. */
  readonly measureFromMs: number;
  /** Figures for items arriving up to this (default: the end). */
  readonly measureToMs?: number;
}

interface Law {
  readonly name: string;
  readonly mode: WindowMode;
  readonly periodMs?: number;
  readonly steps?: number;
  readonly band?: 'hold' | 'grow';
  readonly increase?: 'max' | 'double';
}

interface Result {
  readonly p50: number;
  readonly p99: number;
  readonly callsPer1000: number;
  readonly meanWindow: number;
  /** ms from the load step until the window first reaches its value for the new load, if the scenario has a step. */
  readonly peakInflight: number;
}

/** A binary min-heap of events by time (then by insertion order). */
class Events {
  private readonly heap: { at: number; seq: number; run: () => void }[] = [];
  private seq = 0;
  push(at: number, run: () => void): void {
    const heap = this.heap;
    heap.push({ at, seq: this.seq++, run });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }
  pop(): { at: number; run: () => void } | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.less(l, m)) m = l;
        if (r < heap.length && this.less(r, m)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
  private less(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }
}

/** A small deterministic PRNG (mulberry32), so every law sees the same jitter. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function simulate(scenario: Scenario, law: Law): Result {
  let now = 0;
  const window = new BatchWindow({ mode: law.mode, minMs: MIN_MS, maxMs: MAX_MS, maxInflight: scenario.cap, now: () => now, periodMs: law.periodMs, steps: law.steps, band: law.band, increase: law.increase });
  const events = new Events();
  const rand = random(42);
  const waits: number[] = [];
  const windows: number[] = [];
  let calls = 0;
  let measuredItems = 0;
  let inflight = 0;
  let peakInflight = 0;
  let open: { id: number; items: number[] } | null = null;
  let nextId = 0;
  const ready: number[][] = [];
  const measured = (arrival: number) => arrival >= scenario.measureFromMs && arrival <= (scenario.measureToMs ?? Infinity);

  const dispatchRound = (): void => {
    while (inflight < scenario.cap && ready.length > 0) {
      const items = ready.shift()!;
      inflight++;
      if (inflight > peakInflight && measured(items[0]!)) peakInflight = inflight;
      let counted = false;
      for (const arrival of items) {
        if (!measured(arrival)) continue;
        waits.push(now - arrival);
        measuredItems++;
        counted = true;
      }
      if (counted) calls++;
      const latency = scenario.latencyMs * (1 - JITTER / 2 + JITTER * rand());
      events.push(now + latency, () => {
        inflight--;
        window.finished(inflight, ready.length);
        if (ready.length > 0) dispatchRound();
      });
    }
    window.dispatched(inflight, ready.length);
  };
  const seal = (): void => {
    if (open === null) return;
    ready.push(open.items);
    open = null;
    dispatchRound();
  };

  // Open-loop arrivals, phase by phase.
  let t = 0;
  for (const [until, rate] of scenario.profile) {
    const interval = 1000 / rate;
    for (; t < until; t += interval) {
      const arrival = t;
      events.push(arrival, () => {
        if (open === null) {
          const ms = window.currentMs;
          if (measured(arrival)) windows.push(ms);
          const id = ++nextId;
          open = { id, items: [] };
          events.push(arrival + ms, () => {
            if (open !== null && open.id === id) seal();
          });
        }
        open.items.push(arrival);
        if (open.items.length >= BATCH_MAX_SIZE) seal();
      });
    }
  }
  for (let event = events.pop(); event !== undefined; event = events.pop()) {
    now = event.at;
    event.run();
  }
  waits.sort((a, b) => a - b);
  const at = (q: number) => waits[Math.min(waits.length - 1, Math.ceil(q * waits.length) - 1)] ?? Number.NaN;
  return {
    p50: at(0.5),
    p99: at(0.99),
    callsPer1000: (1000 * calls) / measuredItems,
    meanWindow: windows.reduce((a, b) => a + b, 0) / windows.length,
    peakInflight,
  };
}

const S = 1000;
const SCENARIOS: Scenario[] = [
  { name: 'room: 250/s a shard (1,000 req/s over 4), 50 ms, cap 32', profile: [[20 * S, 250]], latencyMs: 50, cap: 32, measureFromMs: 2 * S },
  { name: 'room: 1,250/s a shard (5,000 req/s), 50 ms, cap 32', profile: [[20 * S, 1250]], latencyMs: 50, cap: 32, measureFromMs: 2 * S },
  { name: 'room: 2,500/s a shard (10,000 req/s), 50 ms, cap 32', profile: [[20 * S, 2500]], latencyMs: 50, cap: 32, measureFromMs: 2 * S },
  { name: 'defaults: 250/s a shard, 50 ms, cap 8', profile: [[20 * S, 250]], latencyMs: 50, cap: 8, measureFromMs: 2 * S },
  { name: 'bottleneck: 250/s a shard, 200 ms, cap 18', profile: [[20 * S, 250]], latencyMs: 200, cap: 18, measureFromMs: 2 * S },
  { name: 'bottleneck: 250/s a shard, 200 ms, cap 20', profile: [[20 * S, 250]], latencyMs: 200, cap: 20, measureFromMs: 2 * S },
  {
    name: 'bottleneck from idle: nothing for 2 s, then 250/s (figures: 1.5 s to 6.5 s after the start), 200 ms, cap 18',
    profile: [[2 * S, 0.5], [9 * S, 250]],
    latencyMs: 200,
    cap: 18,
    measureFromMs: 3.5 * S,
    measureToMs: 8.5 * S,
  },
  {
    name: 'surge: 250/s, then 2,500/s from 5 s (figures: the first second of the surge), 200 ms, cap 16',
    profile: [[5 * S, 250], [8 * S, 2500]],
    latencyMs: 200,
    cap: 16,
    measureFromMs: 5 * S,
    measureToMs: 6 * S,
  },
  {
    name: 'after a surge: 2,500/s, then 250/s from 5 s (figures: the first second after), 50 ms, cap 32',
    profile: [[5 * S, 2500], [8 * S, 250]],
    latencyMs: 50,
    cap: 32,
    measureFromMs: 5 * S,
    measureToMs: 6 * S,
  },
];

const LAWS: Law[] = [
  { name: 'fixed', mode: 'fixed' },
  { name: 'adaptive, period 50 ms, 10 steps, band grows (chosen)', mode: 'adaptive', periodMs: 50, steps: 10, band: 'grow' },
  { name: 'adaptive, period 50 ms, 10 steps, band holds', mode: 'adaptive', periodMs: 50, steps: 10, band: 'hold' },
  { name: 'adaptive, period 50 ms, 10 steps, doubles under pressure', mode: 'adaptive', periodMs: 50, steps: 10, increase: 'double' },
  { name: 'adaptive, period 10 ms, 10 steps', mode: 'adaptive', periodMs: 10, steps: 10 },
  { name: 'adaptive, period 200 ms, 10 steps', mode: 'adaptive', periodMs: 200, steps: 10 },
  { name: 'adaptive, period 50 ms, 3 steps', mode: 'adaptive', periodMs: 50, steps: 3 },
  { name: 'adaptive, period 50 ms, 30 steps', mode: 'adaptive', periodMs: 50, steps: 30 },
];

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
for (const scenario of SCENARIOS) {
  console.log(`\n### ${scenario.name}\n`);
  console.log('| law | wait p50 ms | wait p99 ms | calls / 1,000 | mean window ms | peak in flight |');
  console.log('|---|---|---|---|---|---|');
  for (const law of LAWS) {
    const r = simulate(scenario, law);
    console.log(`| ${law.name} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.callsPer1000)} | ${f(r.meanWindow, 2)} | ${r.peakInflight} |`);
  }
}
