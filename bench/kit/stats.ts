/** The bench kit's arithmetic: nearest-rank percentiles, the median of rounds, a sleep. */

export type Percentiles = { readonly [K in 'count' | 'mean' | 'p50' | 'p90' | 'p99' | 'p999' | 'max']: number };

/** Nearest-rank percentile of an ascending array. */
export function rank(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Sorts the values (in place) and summarises them; null when there are none. */
export function percentiles(values: Float64Array): Percentiles | null {
  if (values.length === 0) return null;
  values.sort();
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  const p = (q: number): number => rank(values, q);
  return { count: values.length, mean: sum / values.length, p50: p(0.5), p90: p(0.9), p99: p(0.99), p999: p(0.999), max: values[values.length - 1]! };
}

/** The median of the finite values (the mean of the two middle ones for an even count); null when there are none. */
export function median(values: readonly (number | null | undefined)[]): number | null {
  const v = values.filter((x): x is number => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** a / b; null when either is missing or b is not positive. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b <= 0 ? null : a / b;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
