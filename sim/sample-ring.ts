/**
 * A fixed-size ring of timing samples (ms) for the simulated downstream's
 * GET /stats (sim/legacy-downstream.ts): it keeps the last `size` samples and
 * counts every one added since the last reset, so a long run costs fixed memory
 * and the percentiles cover the most recent samples.
 */
export interface SampleSummary {
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

export class SampleRing {
  readonly size: number;
  private readonly samples: Float64Array;
  /** Samples added since the last reset (the summary covers the last `size` of them). */
  count = 0;

  constructor(size: number) {
    this.size = size;
    this.samples = new Float64Array(size);
  }

  add(ms: number): void {
    this.samples[this.count % this.size] = ms;
    this.count++;
  }

  reset(): void {
    this.count = 0;
  }

  /** p50, p99 and max of the samples kept; nulls when there are none. */
  summary(): SampleSummary {
    const n = Math.min(this.count, this.size);
    if (n === 0) return { p50: null, p99: null, max: null };
    const sorted = this.samples.slice(0, n).sort();
    const at = (q: number): number => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!;
    return { p50: at(0.5), p99: at(0.99), max: sorted[n - 1]! };
  }
}
