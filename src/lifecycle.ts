/**
 * Where the process is in its life, read by the probes and the ingress:
 *
 *   starting ──listening──► ready ──SIGTERM/SIGINT──► stopping ──SHUTDOWN_DELAY_MS──► draining ──► stopped
 *
 * - ready:    /readyz 200, work accepted.
 * - stopping: /readyz 503 so the load balancer stops sending, work still accepted.
 * - draining: listener closed, new requests get 503 with `connection: close`,
 *             shards flush what they hold.
 */
export type Phase = 'starting' | 'ready' | 'stopping' | 'draining' | 'stopped';

export class Lifecycle {
  phase: Phase = 'starting';

  get isReady(): boolean {
    return this.phase === 'ready';
  }

  /** Work is taken while ready, and during the shutdown delay. */
  get acceptsWork(): boolean {
    return this.phase === 'ready' || this.phase === 'stopping';
  }

  /** Connections should close after their current response. */
  get isClosing(): boolean {
    return this.phase === 'draining' || this.phase === 'stopped';
  }
}
