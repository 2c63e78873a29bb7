/**
 * The simulated legacy downstream's pool of workers (sim/legacy-downstream.ts):
 * what gives it a finite capacity.
 *
 * At most `workers` jobs run at once (0: no limit, every job starts at once);
 * the others wait in a FIFO, in arrival order. With `queueLimit` > 0, a job that
 * would wait behind that many is refused (`full()` says so before it is
 * submitted; the caller answers 503). A running job holds its worker until it
 * calls its `release`, which is idempotent: the legacy system does not notice a
 * client that went away, so a job is released when its work is done, whoever is
 * still listening.
 *
 * The limits are read through a function on every decision, so a change made
 * by LegacyDownstream.set() counts at once: after it, `pump()` starts as many
 * waiting jobs as the new limit allows; a lower limit lets the running jobs
 * finish and starts nothing until fewer than `workers` run.
 *
 * The FIFO is src/actors/fifo.ts (no Array.shift on a long array: a surge can
 * queue thousands of calls).
 */
import { Fifo } from '../src/actors/fifo.ts';

export interface PoolLimits {
  /** Jobs run at once; 0 = no limit. */
  readonly workers: number;
  /** Jobs waiting beyond which a new one is refused; 0 = no limit. */
  readonly queueLimit: number;
}

export class WorkerPool<J> {
  private readonly queue = new Fifo<J>();
  /** Jobs running now. */
  busy = 0;
  /** The most jobs running at once since the last resetMax(). */
  maxBusy = 0;
  /** Set while pump() loops, so that a job released at once by `run` does not recurse into it. */
  private pumping = false;

  private readonly limits: () => PoolLimits;
  private readonly run: (job: J, release: () => void) => void;

  /** `run` starts a job; it must call `release` when the job's worker is free again (later calls are ignored). */
  constructor(limits: () => PoolLimits, run: (job: J, release: () => void) => void) {
    this.limits = limits;
    this.run = run;
  }

  /** Jobs waiting for a worker now. */
  get queued(): number {
    return this.queue.length;
  }

  /** Whether a job submitted now would be refused (every worker busy and the queue at its limit). */
  full(): boolean {
    const { workers, queueLimit } = this.limits();
    return workers > 0 && this.busy >= workers && queueLimit > 0 && this.queue.length >= queueLimit;
  }

  /** Starts the job if a worker is free and no one waits, else queues it (check full() first). */
  submit(job: J): void {
    this.queue.push(job);
    this.pump();
  }

  /** Starts waiting jobs, oldest first, while the limit allows. Call it after the limits change. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        const { workers } = this.limits();
        if (workers > 0 && this.busy >= workers) return;
        this.start(this.queue.shift()!);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Forgets the waiting jobs (the server is closing); running ones finish. */
  clear(): J[] {
    const dropped = [...this.queue];
    while (this.queue.shift() !== undefined);
    return dropped;
  }

  resetMax(): void {
    this.maxBusy = this.busy;
  }

  private start(job: J): void {
    this.busy++;
    if (this.busy > this.maxBusy) this.maxBusy = this.busy;
    let released = false;
    this.run(job, () => {
      if (released) return;
      released = true;
      this.busy--;
      this.pump();
    });
  }
}
