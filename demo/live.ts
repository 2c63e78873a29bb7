/**
 * The demo's view of a phase while it runs: a progress bar (on a terminal), and
 * second by second what the simulated downstream received and answered, its
 * queue, and the sidecar's call limit (gauge sidecar_downstream_concurrency_limit,
 * null where the sidecar does not export it). At each phase boundary it takes
 * the downstream's own figures over the phase (its stats(), then resets them)
 * and a scrape of the sidecar's /metrics (for the overhead histogram).
 */
import { scrape, sum, type Scrape } from '../sim/scrape.ts';
import type { DownstreamStats, LegacyDownstream } from '../sim/legacy-downstream.ts';

export const LIMIT_GAUGE = 'sidecar_downstream_concurrency_limit';

/** One second of a phase, as this process saw the downstream. */
export interface Second {
  /** Calls the downstream accepted and the items in them. */
  calls: number;
  items: number;
  /** Items in the calls it answered. */
  answered: number;
  /** How long this "second" lasted (ms): samples are taken every 200 ms, so a little over 1,000. */
  ms: number;
  /** The most calls waiting in its queue, and workers busy, at the 200 ms samples. */
  queued: number;
  busy: number;
  /** The sidecar's call limit at the end of the second; null when not exported (or not read). */
  limit: number | null;
}

/** A phase seen from this process, from its start to the next phase's. */
export interface PhaseView {
  /** The downstream's own figures over the phase (its GET /stats). */
  readonly downstream: DownstreamStats;
  /** Calls and items the downstream accepted during the phase. */
  readonly calls: number;
  readonly items: number;
  readonly seconds: readonly Second[];
  /** /metrics scrapes at the phase's start and end. */
  readonly scrapes: readonly [Promise<Scrape | null>, Promise<Scrape | null>];
}

/** Items the downstream answered per second over a sample. */
export function perSecond(second: Second): number {
  return second.ms > 0 ? (1000 * second.answered) / second.ms : 0;
}

export class Live {
  private readonly downstream: LegacyDownstream;
  private readonly sidecarUrl: string;
  private readonly tty = process.stdout.isTTY === true;
  private title = '';
  private length = 0;
  private started = 0;
  private startScrape: Promise<Scrape | null> | null = null;
  private start = { calls: 0, items: 0 };
  private seconds: Second[] = [];
  private current: Second | null = null;
  private last = { calls: 0, items: 0, answered: 0, at: 0 };
  private limit: number | null = null;
  private readonly ticker: NodeJS.Timeout;
  private barShown = false;

  constructor(downstream: LegacyDownstream, sidecarUrl: string) {
    this.downstream = downstream;
    this.sidecarUrl = sidecarUrl;
    this.ticker = setInterval(() => this.tick(), 200);
  }

  /** Starts a phase: ends the one before (its view, or null for the first) and begins sampling this one. */
  phase(title: string, lengthS: number): PhaseView | null {
    const ended = this.end();
    this.title = title;
    this.length = lengthS;
    this.started = performance.now();
    this.startScrape = scrape(this.sidecarUrl);
    this.start = { calls: this.downstream.batches, items: this.downstream.items };
    this.last = { ...this.start, answered: 0, at: this.started };
    this.seconds = [];
    this.current = this.fresh();
    if (!this.tty) console.log(`  ${title} for ${lengthS} s`);
    return ended;
  }

  /** Ends the phase running (its view; null when none) and the progress bar. */
  end(): PhaseView | null {
    if (this.startScrape === null) return null;
    this.closeSecond();
    if (this.barShown) {
      this.draw(Math.min(this.length, (performance.now() - this.started) / 1000));
      process.stdout.write('\n');
    }
    this.barShown = false;
    const view: PhaseView = {
      downstream: this.downstream.stats(),
      calls: this.downstream.batches - this.start.calls,
      items: this.downstream.items - this.start.items,
      seconds: this.seconds,
      scrapes: [this.startScrape, scrape(this.sidecarUrl)],
    };
    this.downstream.resetStats();
    this.startScrape = null;
    return view;
  }

  /** Stops sampling (and ends the progress line). */
  close(): void {
    clearInterval(this.ticker);
    if (this.barShown) process.stdout.write('\n');
    this.barShown = false;
  }

  private fresh(): Second {
    return { calls: 0, items: 0, answered: 0, ms: 0, queued: 0, busy: 0, limit: null };
  }

  private tick(): void {
    if (this.startScrape === null || this.current === null) return;
    const second = this.current;
    second.queued = Math.max(second.queued, this.downstream.queued);
    second.busy = Math.max(second.busy, this.downstream.busy);
    const elapsed = (performance.now() - this.started) / 1000;
    if (elapsed >= this.seconds.length + 1 && this.seconds.length < Math.ceil(this.length)) this.closeSecond();
    if (this.tty) this.draw(Math.min(elapsed, this.length));
  }

  /** Files the second running, and reads the call limit for the next. */
  private closeSecond(): void {
    const second = this.current;
    if (second === null) return;
    const answered = this.downstream.stats().items;
    const now = performance.now();
    second.ms = now - this.last.at;
    second.calls = this.downstream.batches - this.last.calls;
    second.items = this.downstream.items - this.last.items;
    second.answered = answered - this.last.answered;
    second.limit = this.limit;
    this.last = { calls: this.downstream.batches, items: this.downstream.items, answered, at: now };
    this.seconds.push(second);
    this.current = this.fresh();
    void scrape(this.sidecarUrl).then((s) => (this.limit = sum(s, LIMIT_GAUGE)));
  }

  private draw(elapsed: number): void {
    const bar = '#'.repeat(Math.round((20 * elapsed) / this.length)).padEnd(20, '.');
    const recent = this.seconds.at(-1);
    const detail =
      recent === undefined
        ? `downstream: ${this.downstream.busy} busy, ${this.downstream.queued} queued`
        : `batch ${(recent.items / Math.max(1, recent.calls)).toFixed(0)} · downstream ${perSecond(recent).toFixed(0)} items/s, ` +
          `${this.downstream.busy} busy, ${this.downstream.queued} queued · limit ${recent.limit ?? 'n/a'}`;
    process.stdout.write(`\r  ${this.title.padEnd(26)} [${bar}] ${elapsed.toFixed(1)}/${this.length} s · ${detail}\x1b[K`);
    this.barShown = true;
  }
}
