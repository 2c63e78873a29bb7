/**
 * The downstream call limit, learned from the downstream's own latency
 * (DOWNSTREAM_CONCURRENCY=adaptive, ADR 0018). The law only: it is fed one
 * sample per finished call and says how many calls may be in flight; the gate
 * that enforces it across the shards is call-gate.ts. Kept apart so the law
 * can be tested on recorded samples, without a server (Netflix's
 * concurrency-limits keeps `Limit` apart from `Limiter` for the same reason).
 *
 * Why latency: a legacy downstream works W calls at a time and queues the
 * rest. By Little's law, with L calls in flight and L > W, each call spends
 * L / W of its service time in there, so its latency is L / W times what the
 * same call takes on an idle downstream. Below W the latency is the service
 * time. The limit we want is W, the knee, and the latency says when we have
 * passed it. Every client of the downstream sees the same latency, so two
 * sidecar processes in front of one downstream both back off (a count of our
 * own calls would not see the other's).
 *
 * The service time depends on the batch: a call of 100 items may cost twice
 * one of 5 items. So a sample is judged against the best latency seen recently
 * for calls of its size: the sizes 1..BATCH_MAX_SIZE fall into SIZE_BUCKETS
 * ranges, each with the minimum latency of the last 5-10 s (two slots of
 * BASELINE_SLOT_MS, the older dropped as a new one starts, so a downstream
 * that got slower for good is learned again within 10 s). A sample's ratio is
 * its latency over its bucket's minimum.
 *
 * The law, once per round (a round ends when as many samples as the limit
 * have come in, about one latency):
 *
 *   queueing   the round's mean ratio is above 1 + TOLERANCE: calls waited in
 *              the downstream. estimate ← estimate / ratio (Little's law:
 *              L / (L / W) = W). The level that failed is remembered, and the
 *              next probe waits a backoff that doubles while probes keep
 *              failing (PROBE_BACKOFF_MIN..MAX_MS).
 *   held       no queueing, and a batch waited for a call slot during the
 *              round (the limit held work back): probe one higher, once the
 *              backoff has passed. A round at the level that failed before,
 *              without queueing, clears the backoff: the capacity came back.
 *   otherwise  hold: nothing waits for a slot, more calls would not help.
 *
 * The limit enforced is the estimate rounded, at least 1. The estimate
 * keeps its fraction so that two clients sharing a downstream converge to
 * equal shares: both add the same steps, and each decrease divides both by
 * the same ratio, which shrinks the gap between them (as AIMD does); whole
 * numbers would round the gap back each time.
 *
 * Probes cost a little: at W + 1 one call waits in the downstream's queue for
 * about one round. The backoff keeps them rare at a steady knee (one every
 * PROBE_BACKOFF_MAX_MS) and quick after a capacity change (the level that
 * failed while capacity was down succeeds once it is back).
 *
 * A call that timed out, or that the downstream refused with 503/429 (its own
 * queue is full), is a drop: the estimate falls by a quarter at once.
 */

/** A round's mean latency over the baseline above which calls are taken to have queued. */
export const TOLERANCE = 0.2;
/** Sizes 1..BATCH_MAX_SIZE fall into this many equal ranges, each with its own baseline. */
export const SIZE_BUCKETS = 16;
/** A baseline is the minimum over the current slot and the one before. */
export const BASELINE_SLOT_MS = 5_000;
export const PROBE_BACKOFF_MIN_MS = 250;
export const PROBE_BACKOFF_MAX_MS = 2_000;
/** A drop keeps this share of the limit. */
const DROP_KEEP = 0.75;

export interface CallLimitOptions {
  /** The ceiling: SHARD_COUNT × MAX_INFLIGHT_BATCHES. */
  readonly max: number;
  /** Where it starts (clamped to 1..max). */
  readonly initial: number;
  /** BATCH_MAX_SIZE: the range the size buckets cover. */
  readonly batchMaxSize: number;
  /** 0..1, for the probe jitter; tests pass their own. */
  readonly random?: () => number;
}

export class CallLimit {
  readonly max: number;
  /** The learned limit with its fraction (1..max); the limit in force is it rounded. */
  private estimate: number;
  private readonly bucketWidth: number;
  private readonly random: () => number;
  private readonly current = new Float64Array(SIZE_BUCKETS).fill(Infinity);
  private readonly previous = new Float64Array(SIZE_BUCKETS).fill(Infinity);
  private slotStart = Number.NEGATIVE_INFINITY;
  private samples = 0;
  private ratioSum = 0;
  /** A batch waited for a slot since the round began. */
  private held = false;
  private probeAt = Number.NEGATIVE_INFINITY;
  private backoffMs = 0;
  /** The lowest level that queued, until a round there runs clean; Infinity when none. */
  private failedLevel = Infinity;

  constructor({ max, initial, batchMaxSize, random = Math.random }: CallLimitOptions) {
    this.random = random;
    this.max = Math.max(1, max);
    this.estimate = Math.min(this.max, Math.max(1, Math.round(initial)));
    this.bucketWidth = Math.max(1, batchMaxSize) / SIZE_BUCKETS;
  }

  /** Calls that may be in flight now, 1..max. */
  get limit(): number {
    return Math.max(1, Math.round(this.estimate));
  }

  /** A sealed batch waited for a slot: the limit held work back. */
  onHeld(): void {
    this.held = true;
  }

  /** A call of `items` items answered after `latencyMs`, at `now` (monotonic ms). */
  onSample(latencyMs: number, items: number, now: number): void {
    if (now - this.slotStart >= BASELINE_SLOT_MS) {
      this.previous.set(this.current);
      this.current.fill(Infinity);
      this.slotStart = now;
    }
    const bucket = Math.min(SIZE_BUCKETS - 1, Math.floor((items - 1) / this.bucketWidth));
    if (latencyMs < this.current[bucket]) this.current[bucket] = latencyMs;
    const best = Math.min(this.current[bucket], this.previous[bucket]);
    this.ratioSum += best > 0 ? latencyMs / best : 1;
    if (++this.samples >= this.limit) this.endRound(now);
  }

  /** The call timed out, or the downstream refused it as overloaded (503/429). */
  onDrop(now: number): void {
    this.lower(this.estimate * DROP_KEEP, now);
    this.startRound();
  }

  private endRound(now: number): void {
    const ratio = this.ratioSum / this.samples;
    if (ratio > 1 + TOLERANCE) {
      this.lower(this.estimate / ratio, now);
    } else {
      if (this.limit >= this.failedLevel) {
        // A clean round where calls queued before: the capacity is back.
        this.failedLevel = Infinity;
        this.backoffMs = 0;
        this.probeAt = now;
      }
      if (this.held && now >= this.probeAt) this.estimate = Math.min(this.max, this.estimate + 1);
    }
    this.startRound();
  }

  private lower(to: number, now: number): void {
    this.failedLevel = Math.min(this.failedLevel, this.limit);
    this.backoffMs = Math.min(PROBE_BACKOFF_MAX_MS, Math.max(PROBE_BACKOFF_MIN_MS, this.backoffMs * 2));
    // Jittered, so that clients of one downstream that backed off together do not probe together.
    this.probeAt = now + this.backoffMs * (0.5 + 0.5 * this.random());
    this.estimate = Math.max(1, to);
  }

  private startRound(): void {
    this.samples = 0;
    this.ratioSum = 0;
    this.held = false;
  }
}
