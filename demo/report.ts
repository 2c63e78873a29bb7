/**
 * The demo's report of one phase, as readable lines: what the clients got
 * (200, 503 with retry-after, 504, other), the latency of the 200s, the batch
 * sizes, the downstream's items/s against its maximum and its own queue wait,
 * the sidecar's call limit, its overhead, and a line per second.
 */
import { histogram, histogramDelta, quantile, type Scrape } from '../sim/scrape.ts';
import type { SecondResult, SegmentResult } from '../bench/kit/open-loop.ts';
import { LIMIT_GAUGE, perSecond, type PhaseView } from './live.ts';

export const TARGET_MS = 15;

/** A number with `d` decimals, or n/a. */
export const f = (n: number | null | undefined, d = 1): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));
const int = (n: number): string => Math.round(n).toLocaleString('en-US');

export interface Overhead {
  readonly p50: number | null;
  readonly p99: number | null;
  /** The p99 is past the histogram's last bucket. */
  readonly overflow: boolean;
}

/** sidecar_overhead_seconds between two scrapes, ms. */
export function overhead(before: Scrape | null, after: Scrape | null): Overhead {
  const h = histogramDelta(histogram(before, 'sidecar_overhead_seconds'), histogram(after, 'sidecar_overhead_seconds'));
  const p50 = quantile(h, 0.5);
  const p99 = quantile(h, 0.99);
  return { p50: p50 === null ? null : p50.value * 1000, p99: p99 === null ? null : p99.value * 1000, overflow: p99?.overflow ?? false };
}

/** The client answers of a segment: 200 / 503 with retry-after / 504 / other, and what "other" holds. */
export function answers(s: SegmentResult): string {
  const gateway = s.statuses['504'] ?? 0;
  const parts: string[] = [];
  for (const [status, n] of Object.entries(s.statuses)) {
    if (!status.startsWith('2') && status !== '503' && status !== '504' && n > 0) parts.push(`${n} × ${status}`);
  }
  if (s.shed > s.shedWithRetryAfter) parts.push(`${s.shed - s.shedWithRetryAfter} × 503 without retry-after`);
  for (const [code, n] of Object.entries(s.errors)) parts.push(`${n} × ${code}`);
  if (s.unfinished > 0) parts.push(`${s.unfinished} unanswered`);
  const other = s.otherStatus - gateway + (s.shed - s.shedWithRetryAfter) + s.errorCount + s.unfinished;
  return (
    `${s.sent} sent: ${s.answered} answered: ${s.ok} × 200, ${s.shedWithRetryAfter} × 503 with retry-after, ` +
    `${gateway} × 504, ${other} other${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`
  );
}

export interface PhaseReport {
  readonly heading: string;
  readonly segment: SegmentResult;
  readonly view: PhaseView;
  /** The generator's seconds of this segment (by intended send time). */
  readonly seconds: readonly SecondResult[];
  readonly overhead: Overhead;
  /** The downstream's maximum items/s (full batches on every worker). */
  readonly maxItemsPerSecond: number;
  readonly workers: number;
  /** With the steady phase's: the overhead target line. */
  readonly target?: boolean;
}

export function printPhase(r: PhaseReport): void {
  const { segment: s, view: v } = r;
  const d = v.downstream;
  console.log(`\n${r.heading}`);
  console.log(`  answers:          ${answers(s)}`);
  console.log(`  latency of 200s:  p50 ${f(s.okLatencyMs?.p50)} ms, p99 ${f(s.okLatencyMs?.p99)} ms (client side, from each request's intended send time)`);
  console.log(`  batches:          mean ${f(v.items / Math.max(1, v.calls))} items per downstream call (${v.calls} calls for ${v.items} items)`);
  const share = Number.isFinite(r.maxItemsPerSecond) ? ` = ${f((100 * d.itemsPerSecond) / r.maxItemsPerSecond, 0)}% of its ${int(r.maxItemsPerSecond)} maximum` : '';
  const busy = r.workers > 0 ? `, workers busy at most ${d.maxBusy} of ${r.workers}` : '';
  console.log(`  downstream:       ${int(d.itemsPerSecond)} items/s answered${share}; its own queue wait p99 ${f(d.queueWait.p99)} ms${busy}; holds p99 ${f(d.p99, 0)} ms`);
  const limits = v.seconds.map((second) => second.limit).filter((limit): limit is number => limit !== null);
  console.log(
    `  call limit:       ${limits.length === 0 ? 'n/a' : `${Math.min(...limits)}–${Math.max(...limits)} (min–max over the phase, last ${limits.at(-1)})`} (${LIMIT_GAUGE})`,
  );
  const o = r.overhead;
  const p99 = `${o.overflow ? '> ' : ''}${f(o.p99)} ms`;
  if (r.target === true && r.workers > 0) {
    // Against a downstream of a few calls at a time, items wait for a call slot: the shield at work, not overhead.
    console.log(
      `  overhead p99:     ${p99} (sidecar_overhead_seconds: time in the sidecar less the downstream call, so the window and the wait ` +
        `for one of the ${r.workers} calls the downstream works at once; the ${TARGET_MS} ms target is for a downstream with room)`,
    );
  } else if (r.target === true) {
    const verdict = o.p99 === null ? 'n/a' : !o.overflow && o.p99 <= TARGET_MS ? 'within' : 'OVER';
    console.log(
      `  overhead p99:     ${p99}, target ≤ ${TARGET_MS} ms: ${verdict} (sidecar_overhead_seconds, p50 ${f(o.p50)} ms: time in the sidecar ` +
        "less the downstream call, the batch window included; from Fastify's request start)",
    );
  } else {
    console.log(`  overhead p99:     ${p99} (sidecar_overhead_seconds, p50 ${f(o.p50)} ms)`);
  }
  printSeconds(r);
}

/** A line per second: the generator's (by intended send time) beside this process's samples of the downstream. */
function printSeconds(r: PhaseReport): void {
  const n = Math.max(r.seconds.length, r.view.seconds.length);
  if (n === 0) return;
  console.log('    second   sent    200    503  other  p99 all  mean batch  downstream items/s  queued  limit');
  for (let i = 0; i < n; i++) {
    const g = r.seconds[i];
    const v = r.view.seconds[i];
    const other = g === undefined ? undefined : g.sent - g.ok - g.shed;
    const rate = v === undefined ? 0 : perSecond(v);
    const share = v === undefined || !Number.isFinite(r.maxItemsPerSecond) ? '' : ` (${f((100 * rate) / r.maxItemsPerSecond, 0).padStart(3)}%)`;
    console.log(
      `    ${String(i + 1).padStart(6)} ${col(g?.sent, 6)} ${col(g?.ok, 6)} ${col(g?.shed, 6)} ${col(other, 6)} ${`${f(g?.p99, 0)} ms`.padStart(8)} ` +
        `${(v === undefined ? '' : f(v.items / Math.max(1, v.calls))).padStart(11)} ${`${v === undefined ? '' : rate.toFixed(0)}${share}`.padStart(19)} ` +
        `${col(v?.queued, 7)} ${(v === undefined ? '' : String(v.limit ?? 'n/a')).padStart(6)}`,
    );
  }
}

const col = (n: number | undefined, width: number): string => (n === undefined ? '' : String(n)).padStart(width);
