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
 * same call takes on an idle downstream; below W the latency is the service
 * time. The limit we want is W, the knee, and the latency says when we have
 * passed it. Every client of the downstream sees the same latency, so two
 * sidecar processes in front of one downstream both back off (a count of our
 * own calls would not see the other's).
 *
 * Baseline. A call's ratio is its latency less this thread's loop delay over
 * what calls of its size took without queueing lately (latency-baselines.ts).
 * The baselines and the floor are minima: they learn from latencies as
 * measured, never from a delay estimate, which can run high (ADR 0018).
 *
 * Rounds. A round ends when as many calls as the limit have come back (about
 * one latency); its ratio is their mean. After each change of the limit, one
 * round's worth of calls is not judged: they were sent under the old limit.
 * The floor is the lowest round ratio of the last 5-10 s, within 1..MAX_FLOOR:
 * what a round reads without queueing (the downstream's own jitter).
 *
 *   queueing   ratio > floor × (1 + TOLERANCE): calls waited in the
 *              downstream. estimate ← C × floor / ratio, C the round's mean
 *              calls in flight (Little's law: C / (C / W) = W; the limit
 *              itself says nothing when it was not reached), but not below
 *              half the ceiling (below), nor, while the loop was BUSY_LOOP
 *              busy or more, below half the limit. A level above the
 *              ceiling (a probe) must queue PROBE_STRIKES rounds running, a
 *              level that ran clean lately CLEAN_LEVEL_STRIKES: slow rounds
 *              happen without any queue of ours (a busy machine, a GC pause,
 *              the downstream's own hiccup), a standing queue of ours reads
 *              slow every round.
 *   not ours   two cuts in a row, and the first round judged after the
 *              second still reads no better (not 10 % below the first cut's
 *              ratio; a cut to one call counts when that call alone reads
 *              LONE_CALL_SLOW; saturated rounds are not judged and wait):
 *              by Little's law cutting our own queue shortens every call,
 *              so this slowness is not ours. The limit goes back to where it
 *              was before those cuts (past the ceiling, to a level never
 *              shown clean, only when this machine's slowness shows: the
 *              loop BUSY_LOOP busy, or that lone call), so does the time it
 *              last queued (slow start goes on if it was on), and that ratio
 *              is the floor for BASELINE_SLOT_MS (with the loop calm it does
 *              not probe meanwhile). Two cuts, not one: a second client of
 *              the downstream cuts too, a round or two later, and only both
 *              cuts together shorten the calls.
 *   saturated  the round's calls were out while this thread's loop was
 *              SATURATED_LOOP busy or more: no round reads as queueing, and
 *              a held round grows the limit by half at once, knee or not.
 *              Such a round is not judged, so its level is not one that ran
 *              clean (the ceiling, below): a limit that grew past the knee
 *              while the loop was saturated (compiling at start-up, say) is
 *              cut as a failed probe is, by Little's law at the first calm
 *              rounds that queue, and the knee is probed again only after
 *              KNEE_PROBE_MS.
 *   held       no queueing, and a batch waited for a call slot during the
 *              round (the limit held work back): probe higher once `probeAt`
 *              has passed, by one call; below the ceiling (after a cut) by
 *              half the way back to it; by a quarter while no round has
 *              queued for SLOW_START_AFTER_MS (a downstream with room is found
 *              within a second or two).
 *   otherwise  hold: nothing waits for a slot, more calls would not help.
 *
 * Probing. At W + 1 every call waits in the downstream's queue for about two
 * rounds, so how often the law probes decides the queue wait a steady load
 * sees. It tells two cases apart by the best level that ran clean in the last
 * 15-30 s (two slots of CEILING_SLOT_MS), the ceiling:
 *   - queueing at a level above the ceiling is the knee: probe again only
 *     after KNEE_PROBE_MS (jittered), a few rounds in a hundred, and while
 *     batches leave short of full only after KNEE_PROBE_PARTIAL_MS: the
 *     downstream keeps up, and more calls would only shave their latency;
 *   - queueing at or below it, or a cut to below KNEE_SHARE of it (a probe
 *     that met a capacity drop), means the capacity dropped: probe again after
 *     PROBE_BACKOFF_MIN_MS, doubling to PROBE_BACKOFF_MAX_MS while probes keep
 *     failing, so the limit climbs back within seconds of the capacity's
 *     return, and a probe that runs clean clears the backoff.
 * Waits are jittered (×0.5..1) so clients that backed off together do not
 * probe together.
 *
 * Sharing. The limit enforced is the estimate rounded, at least 1. The
 * estimate keeps its fraction so that two clients sharing a downstream
 * converge to equal shares: both add the same steps, and each decrease
 * divides both by the same ratio (as AIMD does). A client held at one call
 * refuses most, and cannot cut: its backoff does not grow there, and a lone
 * call that reads slow (it waits behind the other client's calls) makes the
 * next probe due within PROBE_BACKOFF_MIN_MS, knee or not. A cut to one call is
 * a knee only when Little's law says so (LONE_SHARE); one whose calls read
 * clean is probed as any knee.
 *
 * A call that timed out, or that the downstream refused with 503/429 (its own
 * queue is full), is a drop: the estimate falls by a quarter at once.
 */
import { BASELINE_SLOT_MS, LatencyBaselines } from './latency-baselines.ts';

/** How far a round's ratio may stand above the floor before calls are taken to have queued. */
export const TOLERANCE = 0.15;
/** The floor never stands higher: a downstream that varies more is judged as if it did not, and a queue from the first call on still reads as one. */
export const MAX_FLOOR = 1.1;
/** The ceiling is the best clean level over the current slot and the one before. */
export const CEILING_SLOT_MS = 15_000;
export const PROBE_BACKOFF_MIN_MS = 250;
export const PROBE_BACKOFF_MAX_MS = 2_000;
/** After a probe above the ceiling queued: the next one, while calls leave full... */
export const KNEE_PROBE_MS = 10_000;
/** ...and while they leave short of full. */
export const KNEE_PROBE_PARTIAL_MS = 30_000;
/** With no queueing for this long, probes grow by a quarter instead of one call. */
export const SLOW_START_AFTER_MS = 30_000;
/** Rounds in a row that must read as queueing before a probe is cut back... */
export const PROBE_STRIKES = 2;
/** ...and before a level that ran clean lately is cut. */
export const CLEAN_LEVEL_STRIKES = 3;
/**
 * How busy this thread's event loop was while the round's calls were out
 * (0..1) changes what their latency says: a busy loop reads every answer late
 * (1.2-1.35x at 0.6-0.94 against a downstream with room, 2-24x at 1.0; ADR
 * 0018). From SATURATED_LOOP on the latency is not judged at all: the sidecar
 * is the bottleneck, and a cut would only make the limit a second one. Below
 * it the latency is judged as usual, and the check for cuts that do not help
 * (not ours, above) undoes those a busy machine causes.
 */
export const SATURATED_LOOP = 0.8;
/** From this busy on (0..1, as SATURATED_LOOP) a cut takes at most half the limit (rounds read 4-5x at 0.6-0.7: ADR 0018). */
export const BUSY_LOOP = 0.5;
/** One call that reads this many times the floor after a cut counts as a cut that did not help (not ours, above). */
export const LONE_CALL_SLOW = 1.5;
/**
 * A cut to one call while Little's law puts our share at this many calls or more is not a knee of one call
 * (sharing, above): the next probe comes as after a capacity drop. On one worker two calls read 2x: about 1.
 */
export const LONE_SHARE = 1.2;
/** A cut from above the ceiling to below this share of it is a capacity drop met by a probe, not the knee. */
export const KNEE_SHARE = 0.75;
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
  /** Told each change of the limit in force, with the round's ratio and floor (a debug log line; never per call). */
  readonly onChange?: (change: LimitChange) => void;
}

export interface LimitChange {
  readonly from: number;
  readonly to: number;
  readonly why: 'queueing' | 'probe' | 'drop' | 'not-ours';
  /** The round's ratio and the floor it was judged against (1 for a drop). */
  readonly ratio: number;
  readonly floor: number;
  /** This thread's event-loop utilisation over the round (0..1). */
  readonly busy: number;
}

export class CallLimit {
  readonly max: number;
  /** The learned limit with its fraction (1..max); the limit in force is it rounded. */
  private estimate: number;
  /** A call of at least this many items is full (90 % of BATCH_MAX_SIZE). */
  private readonly fullItems: number;
  private readonly random: () => number;
  private readonly onChange: ((change: LimitChange) => void) | undefined;
  private readonly baselines: LatencyBaselines;
  /** The lowest round ratio in the current slot and the one before. */
  private floorCurrent = Infinity;
  private floorPrevious = Infinity;
  /** The highest limit that ran a clean round in the current ceiling slot and the one before. */
  private ceilingCurrent = 0;
  private ceilingPrevious = 0;
  private ceilingSlotStart = Number.NEGATIVE_INFINITY;
  private samples = 0;
  private ratioSum = 0;
  private inflightSum = 0;
  private busySum = 0;
  /** Calls of the round that left full. */
  private fullCalls = 0;
  /** Calls still to come back that were sent before the last change: not judged. */
  private unjudged = 0;
  /** A batch waited for a slot since the round began. */
  private held = false;
  /** Rounds in a row that read as queueing. */
  private strikes = 0;
  /** Latency cuts in a row whose next round read no better, the ratio of the first, and the estimate and last queueing before it. */
  private fruitlessCuts = 0;
  private firstCutRatio = 0;
  private beforeCuts: { readonly estimate: number; readonly lastQueued: number } = { estimate: 1, lastQueued: Number.NEGATIVE_INFINITY };
  /** A cut was made and the round after it is not judged yet. */
  private cutPending = false;
  /** A floor raised by cuts that did not help, and until when it holds. */
  private noiseFloor = 1;
  private noiseUntil = Number.NEGATIVE_INFINITY;
  /** The last change was a probe up, not judged yet. */
  private probing = false;
  private probeAt = Number.NEGATIVE_INFINITY;
  /** When a probe may come while calls leave short of full (later than probeAt at a knee). */
  private partialProbeAt = Number.NEGATIVE_INFINITY;
  private backoffMs = 0;
  private lastQueued = Number.NEGATIVE_INFINITY;

  constructor({ max, initial, batchMaxSize, random = Math.random, onChange }: CallLimitOptions) {
    this.random = random;
    this.onChange = onChange;
    this.max = Math.max(1, max);
    this.estimate = Math.min(this.max, Math.max(1, Math.round(initial)));
    this.baselines = new LatencyBaselines(batchMaxSize);
    this.fullItems = Math.max(1, Math.floor(batchMaxSize * 0.9));
  }

  /** Calls that may be in flight now, 1..max. */
  get limit(): number {
    return Math.max(1, Math.round(this.estimate));
  }

  /** No round has queued for SLOW_START_AFTER_MS (or ever): the limit grows by a quarter a round, or half while saturated. */
  inSlowStart(now: number): boolean {
    return now - this.lastQueued > SLOW_START_AFTER_MS;
  }

  /** A sealed batch waited for a slot: the limit held work back. */
  onHeld(): void {
    this.held = true;
  }

  /** A call of `items` items took `latencyMs` less the loop delay, `measuredMs` as measured; at `now`, with `inflight` in flight (itself included). */
  onSample(latencyMs: number, items: number, now: number, inflight = this.limit, busy = 0, measuredMs = latencyMs): void {
    if (this.baselines.roll(now)) {
      this.floorPrevious = this.floorCurrent;
      this.floorCurrent = Infinity;
    }
    const bucket = this.baselines.record(measuredMs, items);
    if (this.unjudged > 0) {
      this.unjudged--;
      return;
    }
    const best = this.baselines.of(bucket);
    this.ratioSum += best > 0 ? latencyMs / best : 1;
    this.inflightSum += inflight;
    this.busySum += busy;
    if (items >= this.fullItems) this.fullCalls++;
    if (++this.samples >= this.limit) this.endRound(now);
  }

  /** The call timed out, or the downstream refused it as overloaded (503/429). */
  onDrop(now: number): void {
    const from = this.limit;
    this.cutPending = false;
    this.fruitlessCuts = 0;
    this.lower(this.estimate * DROP_KEEP, now);
    if (this.limit !== from) this.onChange?.({ from, to: this.limit, why: 'drop', ratio: 1, floor: 1, busy: 0 });
    this.startRound();
    this.unjudged = this.limit;
  }

  private endRound(now: number): void {
    const ratio = this.ratioSum / this.samples;
    const busy = this.busySum / this.samples;
    const before = this.estimate;
    const from = this.limit;
    let floor = Math.max(1, Math.min(this.floorCurrent, this.floorPrevious, ratio, MAX_FLOOR));
    if (now < this.noiseUntil && this.noiseFloor > floor) floor = this.noiseFloor;
    if (ratio < this.floorCurrent) this.floorCurrent = ratio;
    if (now - this.ceilingSlotStart >= CEILING_SLOT_MS) {
      this.ceilingPrevious = this.ceilingCurrent;
      this.ceilingCurrent = 0;
      this.ceilingSlotStart = now;
    }
    const ceiling = Math.max(this.ceilingCurrent, this.ceilingPrevious);
    const concurrency = Math.min(this.estimate, this.inflightSum / this.samples);
    const saturated = busy >= SATURATED_LOOP;
    const slow = ratio > floor * (1 + TOLERANCE);
    const queued = !saturated && concurrency > 1 && slow;
    // A saturated round is not judged: a cut waits for the first round that is.
    if (this.cutPending && !saturated) {
      this.cutPending = false;
      // Two cuts, and the calls no faster: this slowness is not our queue. A cut to one call counts when that
      // call alone reads LONE_CALL_SLOW (it cannot queue behind our own calls).
      const lone = concurrency <= 1 && ratio > floor * LONE_CALL_SLOW;
      const fruitless = (queued || lone) && ratio > this.firstCutRatio * 0.9;
      if (fruitless && ++this.fruitlessCuts >= 2) {
        this.undoCuts(ratio, now, lone || busy >= BUSY_LOOP);
        if (this.limit !== from) this.onChange?.({ from, to: this.limit, why: 'not-ours', ratio, floor, busy });
        return;
      }
      if (!fruitless) this.fruitlessCuts = 0;
    }
    if (queued) {
      this.strikes++;
      if (this.strikes >= (this.limit > ceiling ? PROBE_STRIKES : CLEAN_LEVEL_STRIKES)) {
        const before = { estimate: this.estimate, lastQueued: this.lastQueued };
        const estimate = this.estimate;
        // Half the ceiling, rounded down: a ceiling of 5 must let the limit follow a capacity halved from 4 to 2.
        // From BUSY_LOOP on, at most half the limit at once: a busy loop reads answers late by more than a queue.
        const least = Math.max(Math.floor(ceiling / 2), busy >= BUSY_LOOP ? Math.floor(estimate / 2) : 0);
        this.lower(Math.max((concurrency * floor) / ratio, least), now);
        // Only a cut that lowered the limit can be judged by what follows.
        if (this.limit < from) {
          if (this.fruitlessCuts === 0) {
            this.firstCutRatio = ratio;
            this.beforeCuts = before;
          }
          this.cutPending = true;
        }
      }
    } else {
      this.strikes = 0;
      // One call that reads slow waits behind another client's calls: probe soon (sharing, above).
      if (slow && !saturated && this.limit <= 1) {
        this.probeAt = this.partialProbeAt = Math.min(this.probeAt, now + PROBE_BACKOFF_MIN_MS * (0.5 + 0.5 * this.random()));
      }
      // A saturated round was not judged: the level it ran at did not run clean, and may be far above the knee.
      if (!saturated && this.limit > this.ceilingCurrent) this.ceilingCurrent = this.limit;
      if (this.probing) {
        // A probe ran clean: the next one may follow at once.
        this.backoffMs = 0;
        this.probeAt = this.partialProbeAt = now;
      }
      this.probing = false;
      const due = this.fullCalls * 2 >= this.samples ? this.probeAt : this.partialProbeAt;
      // Saturated and held: the limit is a second bottleneck, whatever a knee said before.
      if (this.held && (now >= due || saturated) && this.estimate < this.max) {
        const ceilingNow = Math.max(this.ceilingCurrent, this.ceilingPrevious);
        const step = saturated
          ? Math.max(1, Math.floor(this.estimate / 2))
          : this.inSlowStart(now)
            ? Math.max(1, Math.floor(this.estimate / 4))
            : Math.max(1, Math.floor((ceilingNow - this.estimate) / 2));
        this.estimate = Math.min(this.max, this.estimate + step);
        this.probing = true;
      }
    }
    this.startRound();
    // The calls in flight now were sent under the old limit.
    if (this.estimate !== before) this.unjudged = this.limit;
    if (this.limit !== from) this.onChange?.({ from, to: this.limit, why: this.limit > from ? 'probe' : 'queueing', ratio, floor, busy });
  }

  /**
   * The cuts since `beforeCuts` did not make the calls faster: back to the limit before them, and to when
   * the law last queued before them (slow start may go on), and this slowness is the floor for BASELINE_SLOT_MS.
   * Past the ceiling, and probing on, only when it is this `machine`'s: else another client likelier took the slots.
   */
  private undoCuts(ratio: number, now: number, machine: boolean): void {
    const before = this.beforeCuts;
    const ceiling = Math.max(1, this.ceilingCurrent, this.ceilingPrevious);
    this.fruitlessCuts = 0;
    this.estimate = Math.max(this.estimate, machine ? before.estimate : Math.min(before.estimate, ceiling));
    this.lastQueued = before.lastQueued;
    this.noiseFloor = ratio;
    this.noiseUntil = now + BASELINE_SLOT_MS;
    // Growing on that raised floor would queue the other client off the downstream: not while it stands.
    if (!machine) this.probeAt = this.partialProbeAt = Math.max(this.probeAt, now + BASELINE_SLOT_MS);
    this.strikes = 0;
    this.startRound();
    this.unjudged = this.limit;
  }

  private lower(to: number, now: number): void {
    const level = this.limit;
    const estimate = Math.max(1, Math.min(to, this.estimate));
    this.strikes = 0;
    this.lastQueued = now;
    this.probing = false;
    const jitter = 0.5 + 0.5 * this.random();
    const oneCall = Math.round(estimate) <= 1;
    const ceiling = Math.max(this.ceilingCurrent, this.ceilingPrevious);
    // One call where Little's law says more is a share of the downstream rounded down, not a knee (sharing, above).
    if (level > ceiling && estimate >= ceiling * KNEE_SHARE && !(oneCall && estimate >= LONE_SHARE)) {
      // Above the best level that ran clean lately: the knee. Probing it again soon would only queue calls.
      this.probeAt = now + KNEE_PROBE_MS * jitter;
      this.partialProbeAt = now + KNEE_PROBE_PARTIAL_MS * jitter;
    } else {
      // A level that ran clean lately queues now: the capacity dropped, and may come back. Doubling, but not at one call.
      this.backoffMs = oneCall ? PROBE_BACKOFF_MIN_MS : Math.min(PROBE_BACKOFF_MAX_MS, Math.max(PROBE_BACKOFF_MIN_MS, this.backoffMs * 2));
      this.probeAt = this.partialProbeAt = now + this.backoffMs * jitter;
    }
    this.estimate = estimate;
  }

  private startRound(): void {
    this.samples = 0;
    this.ratioSum = 0;
    this.inflightSum = 0;
    this.busySum = 0;
    this.fullCalls = 0;
    this.held = false;
  }
}
