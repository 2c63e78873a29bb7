/**
 * Reads a sidecar's GET /metrics (Prometheus text, 0.0.4, parsed by
 * sim/prometheus.ts) and what the bench and the demo derive from a scrape
 * before and one after a window: gauge sums,
 * counter increases by label, histogram deltas and their quantiles
 * (interpolated within cumulative buckets, as histogram_quantile does). Every
 * function answers null when the metric is missing; the reports print n/a.
 */
import { parsePrometheus, type Sample } from './prometheus.ts';

export type Scrape = readonly Sample[];

/** GET <base>/metrics; null when it fails or answers nothing parseable. */
export async function scrape(baseUrl: string): Promise<Scrape | null> {
  try {
    const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) return (await response.body?.cancel(), null);
    const samples = parsePrometheus(await response.text());
    return samples.length === 0 ? null : samples;
  } catch {
    return null;
  }
}

/** Sum of every series of `name`; null when there is none. */
export function sum(scrape: Scrape | null, name: string): number | null {
  const values = (scrape ?? []).filter((s) => s.name === name).map((s) => s.value);
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0);
}

/** Sums of `name` by the value of one label, e.g. sidecar_batches_total by trigger. */
export function byLabel(scrape: Scrape | null, name: string, label: string): Record<string, number> | null {
  const out: Record<string, number> = {};
  let found = false;
  for (const sample of scrape ?? []) {
    if (sample.name !== name) continue;
    const key = sample.labels[label] ?? '';
    out[key] = (out[key] ?? 0) + sample.value;
    found = true;
  }
  return found ? out : null;
}

/** How much a counter grew by label from `before` to `after` (a restart between them counts from zero). */
export function increaseByLabel(before: Scrape | null, after: Scrape | null, name: string, label: string): Record<string, number> | null {
  const end = byLabel(after, name, label);
  if (end === null) return null;
  const start = byLabel(before, name, label) ?? {};
  return Object.fromEntries(Object.entries(end).map(([key, value]) => [key, value >= (start[key] ?? 0) ? value - (start[key] ?? 0) : value]));
}

export interface Histogram {
  /** Cumulative counts by upper bound, ascending, +Inf last. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly sum: number;
  readonly count: number;
}

/** The histogram `name`, summed over every label set apart from `le`; null when missing. */
export function histogram(scrape: Scrape | null, name: string): Histogram | null {
  const byLe = new Map<number, number>();
  let [total, count] = [0, 0];
  for (const sample of scrape ?? []) {
    if (sample.name === `${name}_bucket` && sample.labels.le !== undefined) {
      const le = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
      byLe.set(le, (byLe.get(le) ?? 0) + sample.value);
    } else if (sample.name === `${name}_sum`) total += sample.value;
    else if (sample.name === `${name}_count`) count += sample.value;
  }
  if (byLe.size === 0) return null;
  return { buckets: [...byLe].sort((a, b) => a[0] - b[0]).map(([le, c]) => ({ le, count: c })), sum: total, count };
}

/** after − before, bucket by bucket (before null, or a restart between them: after). */
export function histogramDelta(before: Histogram | null, after: Histogram | null): Histogram | null {
  if (after === null || before === null || before.count > after.count) return after;
  const start = new Map(before.buckets.map((b) => [b.le, b.count]));
  return { buckets: after.buckets.map((b) => ({ le: b.le, count: Math.max(0, b.count - (start.get(b.le) ?? 0)) })), sum: after.sum - before.sum, count: after.count - before.count };
}

/** The q-quantile, interpolated inside the bucket that holds the rank; `overflow`: it fell in +Inf, the true value is above `value`. */
export function quantile(h: Histogram | null, q: number): { readonly value: number; readonly overflow: boolean } | null {
  const total = h?.buckets.at(-1)?.count ?? 0;
  if (h === null || total <= 0) return null;
  const target = q * total;
  let [previousLe, previousCount] = [0, 0];
  for (const bucket of h.buckets) {
    if (bucket.count >= target && bucket.count > previousCount) {
      if (!Number.isFinite(bucket.le)) return { value: previousLe, overflow: true };
      return { value: previousLe + (bucket.le - previousLe) * ((target - previousCount) / (bucket.count - previousCount)), overflow: false };
    }
    if (Number.isFinite(bucket.le)) previousLe = bucket.le;
    previousCount = bucket.count;
  }
  return { value: previousLe, overflow: true };
}
