/**
 * Where the process is in its life, read by the probes, the ingress and the
 * `sidecar_lifecycle_phase{phase}` gauge:
 *
 *   starting ──listening──► ready ──SIGTERM/SIGINT──► lame_duck ──SHUTDOWN_DELAY_MS──► closing
 *        ──listener closed──► draining ──every shard final──► stopped
 *
 * - ready:     /readyz 200, work accepted.
 * - lame_duck: /readyz 503 so the load balancer stops sending, work still
 *              accepted (SHUTDOWN_DELAY_MS; entered even when that is 0).
 * - closing:   the listener stops accepting connections; a request on a
 *              kept-alive connection gets 503 with `connection: close`.
 * - draining:  the shards flush what they hold (trigger `drain`); still 503
 *              with `connection: close` for new requests.
 * - stopped:   every item answered, connections closed; telemetry flushes.
 *
 * Phases only move forward. Each change is told to the listeners (the phase
 * log lines of shutdown.ts).
 */
export const PHASES = ['starting', 'ready', 'lame_duck', 'closing', 'draining', 'stopped'] as const;
export type Phase = (typeof PHASES)[number];

export type PhaseListener = (phase: Phase, from: Phase) => void;

export class Lifecycle {
  private current: Phase = 'starting';
  private readonly listeners: PhaseListener[] = [];

  get phase(): Phase {
    return this.current;
  }

  set phase(next: Phase) {
    const from = this.current;
    if (next === from) return;
    this.current = next;
    for (const listener of this.listeners) listener(next, from);
  }

  /** Calls `listener` on every phase change from now on. */
  onChange(listener: PhaseListener): void {
    this.listeners.push(listener);
  }

  get isReady(): boolean {
    return this.current === 'ready';
  }

  /** Work is taken while ready, and during the shutdown delay. */
  get acceptsWork(): boolean {
    return this.current === 'ready' || this.current === 'lame_duck';
  }

  /** Connections should close after their current response. */
  get isClosing(): boolean {
    return this.current === 'closing' || this.current === 'draining' || this.current === 'stopped';
  }
}
