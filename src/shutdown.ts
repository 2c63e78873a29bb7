/**
 * The shutdown sequence of SPEC §5, started by the first SIGTERM or SIGINT:
 *
 * 1. /readyz turns 503; work is still accepted for SHUTDOWN_DELAY_MS so the
 *    load balancer can notice.
 * 2. The listener closes; a request on a kept-alive connection gets 503 with
 *    `connection: close`.
 * 3. The supervisor broadcasts drain: partial batches leave at once (trigger
 *    'drain'), queues empty, calls in flight finish, every shard goes final.
 * 4. With every response written, telemetry is flushed and the process exits 0.
 * 5. If that takes longer than SHUTDOWN_TIMEOUT_MS, items still unanswered get
 *    503 and the process exits 1. A second signal exits at once.
 *
 * Each step is a lifecycle phase (lame_duck, closing, draining, stopped; see
 * lifecycle.ts), shown by the sidecar_lifecycle_phase gauge and by one info
 * line per phase change with the items still held, the calls in flight and the
 * time left of SHUTDOWN_TIMEOUT_MS. The last line says how many items the drain
 * trigger flushed and how many requests were refused as draining.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Batcher } from './actors/batcher.ts';
import type { Config } from './config.ts';
import type { Downstream } from './downstream/client.ts';
import { SidecarErrors } from './errors.ts';
import type { Lifecycle, Phase } from './lifecycle.ts';

/**
 * What takes requests: the Fastify app on this thread (`appIngress`), or the
 * ingress threads (src/ingress/threads.ts, ADR 0017).
 */
export interface Ingress {
  /** Stops accepting connections; resolves once no listener accepts, with a promise of every connection ended. */
  close(): Promise<{ closed: Promise<void> }>;
  closeIdleConnections(): void;
  closeAllConnections(): void;
  /** After the last answer: ends whatever the ingress runs besides its connections (its threads). */
  stop(): Promise<void>;
}

/** Bound on waiting for the listener to stop accepting before the drain starts. */
const LISTENER_CLOSE_WAIT_MS = 200;

/** The Fastify app as the ingress (INGRESS_THREADS=1). */
export function appIngress(app: FastifyInstance): Ingress {
  return {
    async close() {
      const closed = app.close();
      // Fastify stops the listener after its close hooks (a few ticks); the
      // drain starts once new connections are refused.
      const since = performance.now();
      while (app.server.listening && performance.now() - since < LISTENER_CLOSE_WAIT_MS) await sleep(1);
      return { closed };
    },
    closeIdleConnections: () => app.server.closeIdleConnections(),
    closeAllConnections: () => app.server.closeAllConnections(),
    stop: () => Promise.resolve(),
  };
}

export interface ShutdownParts {
  readonly config: Pick<Config, 'shutdownDelayMs' | 'shutdownTimeoutMs'>;
  readonly log: Pick<Logger, 'info' | 'warn' | 'error'>;
  readonly ingress: Ingress;
  readonly batcher: Batcher;
  readonly downstream: Downstream;
  readonly lifecycle: Lifecycle;
  /** Flushes telemetry before exit. */
  readonly flush?: () => Promise<void>;
  /** Requests refused as draining so far (for the last log line). */
  readonly refused?: () => Promise<number>;
  readonly exit: (code: number) => void;
}

/** After the drain (or its timeout), how long the last answers get to reach their sockets. */
const FINAL_WRITE_GRACE_MS = 2_000;
/** The most the telemetry flush may add after the drain (an unreachable collector must not hold the exit). */
const FLUSH_TIMEOUT_MS = 3_000;

/** When SHUTDOWN_TIMEOUT_MS runs out (monotonic ms); null until the drain starts it. */
interface ShutdownClock {
  timeoutAt: number | null;
}

/**
 * Starts the shutdown on the first signal. Call it before the listener opens:
 * it also logs every phase change from then on, `ready` included.
 */
export function createShutdown(parts: ShutdownParts): Shutdown {
  let started = false;
  let failed = false;
  const clock: ShutdownClock = { timeoutAt: null };
  parts.lifecycle.onChange((phase, from) => logPhase(parts, clock, phase, from));
  const begin = (reason: NodeJS.Signals | 'fatal'): void => {
    started = true;
    shutdown(parts, clock, reason).then(
      (code) => parts.exit(failed ? Math.max(code, 1) : code),
      (error: unknown) => {
        parts.log.error({ err: error }, 'shutdown failed');
        parts.exit(1);
      },
    );
  };
  return {
    onSignal(signal) {
      if (started) {
        parts.log.warn({ signal }, 'second signal: exiting at once');
        parts.exit(signal === 'SIGINT' ? 130 : 143);
        return;
      }
      begin(signal);
    },
    onFatal() {
      failed = true;
      if (!started) begin('fatal');
    },
  };
}

export interface Shutdown {
  /** SIGTERM or SIGINT: the first starts the shutdown, a second exits at once. */
  onSignal(signal: NodeJS.Signals): void;
  /** A part of the process failed (an ingress thread died): shut down as for a signal, then exit 1. */
  onFatal(): void;
}

/** One info line per phase change: what is still held, and how much of SHUTDOWN_TIMEOUT_MS is left. */
function logPhase(parts: ShutdownParts, clock: ShutdownClock, phase: Phase, from: Phase): void {
  const { items, calls } = parts.batcher.holdings();
  const timeoutMs = parts.config.shutdownTimeoutMs;
  const timeLeftMs = clock.timeoutAt === null ? timeoutMs : Math.max(0, Math.round(clock.timeoutAt - performance.now()));
  parts.log.info({ phase, from, held: items, inflight: calls, timeLeftMs }, `phase: ${phase}`);
}

async function shutdown(parts: ShutdownParts, clock: ShutdownClock, reason: NodeJS.Signals | 'fatal'): Promise<number> {
  const { config, log, ingress, batcher, downstream, lifecycle } = parts;
  const started = performance.now();

  if (reason === 'fatal') log.error('shutdown: a part of the process failed');
  else log.info({ signal: reason, shutdownDelayMs: config.shutdownDelayMs }, 'shutdown: signal received');
  lifecycle.phase = 'lame_duck';
  if (config.shutdownDelayMs > 0) await sleep(config.shutdownDelayMs);

  lifecycle.phase = 'closing';
  const { closed } = await ingress.close();

  clock.timeoutAt = performance.now() + config.shutdownTimeoutMs;
  lifecycle.phase = 'draining';
  const drained = batcher.drain();

  const timeoutTimer = new AbortController();
  const outcome = await Promise.race([
    drained.then(() => 'drained' as const),
    // Cancelled once the drain wins, so no 25 s timer outlives it.
    sleep(config.shutdownTimeoutMs, 'timeout' as const, { signal: timeoutTimer.signal }).catch(() => 'cancelled' as const),
  ]);
  timeoutTimer.abort();

  let code = 0;
  let unanswered = 0;
  if (outcome === 'timeout') {
    unanswered = batcher.rejectAll(new SidecarErrors.SIDECAR_ERR_SHUTDOWN_TIMEOUT());
    log.error({ unanswered, shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutdown: timeout, answered the rest with 503');
    code = 1;
  } else {
    log.info('shutdown: every shard drained');
  }
  // Every item is answered now. Answers go out with `connection: close`, but a
  // keep-alive connection whose response started before the drain stays open
  // until it idles: close idle ones, give the last writes a moment, then close
  // whatever is left.
  ingress.closeIdleConnections();
  await Promise.race([closed, sleep(FINAL_WRITE_GRACE_MS, undefined)]);
  ingress.closeAllConnections();
  // Counted before the ingress stops (its threads hold their own counts).
  const refused = parts.refused === undefined ? null : await parts.refused().catch(() => null);
  await Promise.race([ingress.stop(), sleep(FINAL_WRITE_GRACE_MS, undefined)]);
  batcher.stop();
  // close() waits for calls in flight (none by now, normally); never for long.
  await Promise.race([code === 0 ? downstream.close() : downstream.destroy(), sleep(FINAL_WRITE_GRACE_MS)]);
  lifecycle.phase = 'stopped';
  if (parts.flush !== undefined) {
    await Promise.race([parts.flush(), sleep(FLUSH_TIMEOUT_MS, undefined)]).catch((error: unknown) =>
      log.warn({ err: error }, 'shutdown: telemetry flush failed'),
    );
  }
  log.info(
    { code, ms: Math.round(performance.now() - started), flushedByDrain: batcher.drainFlushed(), refused, unanswered },
    'shutdown: complete',
  );
  return code;
}
