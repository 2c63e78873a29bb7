/**
 * Reads the sidecar's GET /metrics (Prometheus text exposition format 0.0.4)
 * and derives what the benchmark reports from the difference between a scrape
 * before and a scrape after a measured phase: histogram percentiles
 * (interpolated within cumulative buckets, as Prometheus' histogram_quantile
 * does), counter increments, gauge sums. Every function answers null when the
 * metric is missing, and the report prints that as n/a.
 */

import { parsePrometheus, type Sample } from '../../sim/prometheus.ts';

export type { Sample };
export type Scrape = readonly Sample[];

/** GET <base>/metrics; null when the route is missing, fails, or answers nothing parseable. */
export async function scrape(baseUrl: string): Promise<Scrape | null> {
  try {
    const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) {
      await response.body?.cancel();
      return null;
    }
    // A scrape that does not parse counts as missing (n/a in the report).
    const samples = parsePrometheus(await response.text());
    return samples.length === 0 ? null : samples;
  } catch {
    return null;
  }
}

function matches(sample: Sample, match: Readonly<Record<string, string>> | undefined): boolean {
  if (match === undefined) return true;
  for (const [key, value] of Object.entries(match)) if (sample.labels[key] !== value) return false;
  return true;
}

/** Sum of every series of `name` (all label sets, or those matching `match`); null when there is none. */
export function sum(scrape: Scrape | null, name: string, match?: Record<string, string>): number | null {
  if (scrape === null) return null;
  let total = 0;
  let found = false;
  for (const sample of scrape) {
    if (sample.name === name && matches(sample, match)) {
      total += sample.value;
      found = true;
    }
  }
  return found ? total : null;
}

/** Sums of `name` by the value of one label, e.g. sidecar_batches_total by trigger. */
export function byLabel(scrape: Scrape | null, name: string, label: string): Record<string, number> | null {
  if (scrape === null) return null;
  const out: Record<string, number> = {};
  let found = false;
  for (const sample of scrape) {
    if (sample.name !== name) continue;
    const key = sample.labels[label] ?? '';
    out[key] = (out[key] ?? 0) + sample.value;
    found = true;
  }
  return found ? out : null;
}

/** How much a counter grew from `before` to `after` (a restart between them counts from zero). */
export function increase(before: Scrape | null, after: Scrape | null, name: string, match?: Record<string, string>): number | null {
  const end = sum(after, name, match);
  if (end === null) return null;
  const start = sum(before, name, match) ?? 0;
  return end >= start ? end - start : end;
}

export function increaseByLabel(before: Scrape | null, after: Scrape | null, name: string, label: string): Record<string, number> | null {
  const end = byLabel(after, name, label);
  if (end === null) return null;
  const start = byLabel(before, name, label) ?? {};
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(end)) {
    const from = start[key] ?? 0;
    out[key] = value >= from ? value - from : value;
  }
  return out;
}

export interface Histogram {
  /** Cumulative counts by upper bound, ascending, +Inf last. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly sum: number;
  readonly count: number;
}

/** The histogram `name`, summed over every label set apart from `le`; null when missing. */
export function histogram(scrape: Scrape | null, name: string): Histogram | null {
  if (scrape === null) return null;
  const byLe = new Map<number, number>();
  let total = 0;
  let count = 0;
  let found = false;
  for (const sample of scrape) {
    if (sample.name === `${name}_bucket` && sample.labels.le !== undefined) {
      const le = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
      byLe.set(le, (byLe.get(le) ?? 0) + sample.value);
      found = true;
    } else if (sample.name === `${name}_sum`) total += sample.value;
    else if (sample.name === `${name}_count`) count += sample.value;
  }
  if (!found) return null;
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, c]) => ({ le, count: c }));
  return { buckets, sum: total, count };
}

/** after - before, bucket by bucket (before may be null: the phase started from zero). */
export function histogramDelta(before: Histogram | null, after: Histogram | null): Histogram | null {
  if (after === null) return null;
  if (before === null || before.count > after.count) return after;
  const start = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: Math.max(0, b.count - (start.get(b.le) ?? 0)) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

export interface Quantile {
  readonly value: number;
  /** The rank fell in the +Inf bucket: the true value is above `value` (the largest finite bound). */
  readonly overflow: boolean;
}

/**
 * The q-quantile, interpolated linearly inside the bucket that holds the rank
 * (the first bucket's lower bound is 0), as histogram_quantile() does.
 */
export function quantile(h: Histogram | null, q: number): Quantile | null {
  if (h === null || h.count <= 0 || h.buckets.length === 0) return null;
  const total = h.buckets[h.buckets.length - 1]!.count;
  if (total <= 0) return null;
  const target = q * total;
  let previousLe = 0;
  let previousCount = 0;
  for (const bucket of h.buckets) {
    if (bucket.count >= target && bucket.count > previousCount) {
      if (!Number.isFinite(bucket.le)) return { value: previousLe, overflow: true };
      const lower = bucket.le > 0 && previousLe < bucket.le ? previousLe : 0;
      const fraction = (target - previousCount) / (bucket.count - previousCount);
      return { value: lower + (bucket.le - lower) * fraction, overflow: false };
    }
    if (Number.isFinite(bucket.le)) previousLe = bucket.le;
    previousCount = bucket.count;
  }
  return { value: previousLe, overflow: true };
}

/** Mean of a histogram (sum / count); null when empty or missing. */
export function mean(h: Histogram | null): number | null {
  return h === null || h.count <= 0 ? null : h.sum / h.count;
}
