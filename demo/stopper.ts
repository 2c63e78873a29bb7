/**
 * What the demo started, and the one way to stop all of it: the load generator
 * (a child process), the sidecar (a child in its own process group), and the
 * simulated downstream (a server in this process).
 *
 * `install()` runs before anything starts, so that a Ctrl-C at any moment —
 * while starting, during a load phase, while serving at the end — ends in
 * `stop()`: the generator is killed, the sidecar gets SIGTERM and drains
 * (SIGKILL if it has not exited within the bound), the downstream closes, and
 * the process exits with the sidecar's exit code. Without handlers a signal
 * would kill this process at once, and the sidecar, in its own process group
 * (so that the terminal's Ctrl-C reaches it only through us, as one signal),
 * would outlive it and hold the port.
 *
 * Under `npm run demo` one Ctrl-C can arrive twice (from the terminal to the
 * whole foreground group, and forwarded by npm); a copy within
 * DUPLICATE_WINDOW_MS of the first is ignored. A later, second Ctrl-C stops at
 * once: SIGKILL to the children, then exit. A parent that dies (npm killed
 * alone) counts as a signal too.
 */
import type { LegacyDownstream } from '../sim/legacy-downstream.ts';
import { stopAllSidecars, type SidecarProcess } from '../sim/sidecar-process.ts';

const DUPLICATE_WINDOW_MS = 500;

/** A promise that never settles: what a step of the demo waits on once stopping has begun. */
const never = new Promise<never>(() => {});

export class Stopper {
  /** Aborted on stop: runGenerator kills its child. */
  readonly generator = new AbortController();
  sidecar: SidecarProcess | null = null;
  downstream: LegacyDownstream | null = null;
  stopping = false;
  private firstSignalAt = 0;
  private readonly onStop: (() => void)[] = [];
  private readonly drainTimeoutMs: number;

  /** `drainTimeoutMs`: how long the sidecar may drain before SIGKILL. */
  constructor(drainTimeoutMs: number) {
    this.drainTimeoutMs = drainTimeoutMs;
  }

  /** Handles SIGINT, SIGTERM and SIGHUP, and its parent's death, from now on: call it before starting anything. */
  install(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => this.onSignal(signal));
    // A closed terminal (SIGHUP) makes writes fail; an unhandled 'error' would end this process before the sidecar drained.
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    // `npm run demo` runs `sh -c 'node demo/demo.ts'`: a signal sent to npm alone (kill <npm's pid>) is passed on to
    // that shell, which dies without passing it on, and this process would be left running with the sidecar. Its
    // parent gone (it is adopted: a new ppid), it stops as on a signal.
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid === parent || this.stopping) return;
      clearInterval(watch);
      this.onSignal('parent gone');
    }, 500);
    watch.unref();
  }

  /** Something to do first when stopping (clear a timer, end a progress line). */
  whenStopping(action: () => void): void {
    this.onStop.push(action);
  }

  /**
   * Awaits one step of the demo (starting a child, a load run): its value, or
   * its error; but once stopping has begun, never settles, so the demo does not
   * go on (or report a generator killed on purpose as a failure) while stop() runs.
   */
  async step<T>(promise: Promise<T>): Promise<T> {
    let value: T;
    try {
      value = await promise;
    } catch (error) {
      if (this.stopping) return never;
      throw error;
    }
    if (this.stopping) return never;
    return value;
  }

  /** Stops everything, in order, then exits: with the sidecar's exit code, or `code` when given or when there was no sidecar. */
  async stop(code?: number): Promise<never> {
    if (this.stopping) return never;
    this.stopping = true;
    for (const action of this.onStop) action();
    this.generator.abort();
    let exitCode = code ?? 0;
    if (this.sidecar !== null) {
      const exit = await this.sidecar.stop(this.drainTimeoutMs);
      console.log(
        exit.signal === null
          ? `sidecar drained and exited with code ${exit.code}`
          : `sidecar ended by ${exit.signal}${exit.signal === 'SIGKILL' ? ` (not drained within ${this.drainTimeoutMs / 1000} s)` : ''}`,
      );
      exitCode = code ?? exit.code ?? 1;
    }
    // A sidecar still starting (no handle yet) gets the same: SIGTERM, then SIGKILL after the bound.
    if ((await stopAllSidecars(this.drainTimeoutMs)) > 0 && this.sidecar === null) console.log('the sidecar, still starting, was stopped');
    await this.downstream?.close();
    process.exit(exitCode);
  }

  private onSignal(signal: NodeJS.Signals | 'parent gone'): void {
    const now = performance.now();
    if (!this.stopping) {
      this.firstSignalAt = now;
      process.stdout.write(`\n${signal}: stopping the load generator, draining the sidecar (SIGTERM), closing the downstream…\n`);
      void this.stop();
      return;
    }
    if (now - this.firstSignalAt < DUPLICATE_WINDOW_MS) return;
    process.stdout.write(`${signal} again: killing at once\n`);
    this.sidecar?.child.kill('SIGKILL');
    // sim/sidecar-process.ts and bench/kit/generator.ts SIGKILL their children on 'exit' too.
    process.exit(130);
  }
}
