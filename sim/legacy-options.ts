/**
 * The simulated legacy downstream's options (sim/legacy-downstream.ts): their
 * types and defaults (the defaults keep no worker limit: every call served at
 * once), the validation of a POST /control change, and the capacity a shape
 * gives (maxItemsPerSecond).
 */
export type Behaviour =
  | 'ok'
  /** 500 for every batch. */
  | 'status-500'
  /** 2xx with one result too few. */
  | 'wrong-length'
  /** 2xx with a body that is not JSON. */
  | 'not-json'
  /** 2xx with a JSON object instead of an array. */
  | 'not-array'
  /** Never answers (with workers > 0, holds its worker until its client goes away). */
  | 'hang'
  /** Destroys the connection without answering. */
  | 'reset'
  /** 2xx whose JSON body stops half-way (complete HTTP message, cut JSON). */
  | 'truncated'
  /** Sends the headers and half the body, then destroys the connection. */
  | 'reset-mid-body';

export interface LegacyOptions {
  latencyMs: number;
  jitterMs: number;
  /** Share of batches (0..1) answered 500 at random. */
  failureRate: number;
  /** Share of batches (0..1) delayed by an extra `spikeMs` (latency spikes). */
  spikeRate: number;
  spikeMs: number;
  behaviour: Behaviour;
  /** When set, `behaviour` applies only to batches from this shard (x-shard); others get 'ok'. */
  faultShard: string | null;
  /** Keep each batch's items and headers (tests); benchmarks leave it off. */
  record: boolean;
  /** When set, a batch holding an object item whose field of this name is truthy is answered 500 whole (a poison item). */
  poisonField: string | null;
  /** When set, an object item with this field gets `{ error: <the field's value> }` as its result instead of the echo. */
  rejectField: string | null;
  /** Bytes of filler added to every result (`{ echo, pad }`): heavy answers that keep the sidecar's event loop busy. */
  padBytes: number;
  /** Calls processed at once; 0 = no limit. */
  workers: number;
  /** Cost of each item (ms), added to `latencyMs` for the time a call holds its worker. */
  perItemMs: number;
  /** Calls waiting for a worker beyond which a new call is answered 503 at once; 0 = no limit. */
  queueLimit: number;
}

/** The options POST /control may change: all numbers. */
const CONTROL_KEYS = ['workers', 'latencyMs', 'perItemMs', 'queueLimit', 'jitterMs', 'failureRate', 'spikeRate', 'spikeMs', 'padBytes'] as const;
const INTEGER_KEYS = new Set<string>(['workers', 'queueLimit', 'padBytes']);
const SHARE_KEYS = new Set<string>(['failureRate', 'spikeRate']);

export const LEGACY_DEFAULTS: LegacyOptions = {
  latencyMs: 5,
  jitterMs: 0,
  failureRate: 0,
  spikeRate: 0,
  spikeMs: 0,
  behaviour: 'ok',
  faultShard: null,
  record: false,
  poisonField: null,
  rejectField: null,
  padBytes: 0,
  workers: 0,
  perItemMs: 0,
  queueLimit: 0,
};

/** The most items per second a downstream of this shape answers, in full batches of `batchSize` (Infinity with no worker limit). */
export function maxItemsPerSecond(shape: Pick<LegacyOptions, 'workers' | 'latencyMs' | 'perItemMs'>, batchSize: number): number {
  if (shape.workers === 0) return Infinity;
  return (shape.workers * batchSize) / ((shape.latencyMs + shape.perItemMs * batchSize) / 1000);
}

/** The options a POST /control body asks for, or why it is refused. */
export function parseControl(body: string): Partial<LegacyOptions> | string {
  let changes: unknown;
  try {
    changes = JSON.parse(body);
  } catch {
    return 'body must be JSON';
  }
  if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) return 'body must be a JSON object';
  for (const [key, value] of Object.entries(changes)) {
    if (!(CONTROL_KEYS as readonly string[]).includes(key)) return `unknown option ${key} (allowed: ${CONTROL_KEYS.join(', ')})`;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return `${key} must be a number ≥ 0`;
    if (INTEGER_KEYS.has(key) && !Number.isInteger(value)) return `${key} must be an integer`;
    if (SHARE_KEYS.has(key) && value > 1) return `${key} must be at most 1`;
  }
  return changes as Partial<LegacyOptions>;
}

