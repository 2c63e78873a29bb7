/**
 * What every phase sends, and to what: the request bodies, the sidecar's
 * environment (SPEC §6 defaults but the downstream, BATCH_MAX_WAIT_MS and
 * SHARD_COUNT stated, plus SIDECAR_ENV), the unlimited downstream's hold, the
 * connection counts and the durations, full or BENCH_QUICK (a smoke run of a
 * few seconds a run, one round: not a measurement).
 */
import { shardForKey } from '../../src/actors/routing.ts';
import type { Variant } from './launcher.ts';

export const QUICK = process.env.BENCH_QUICK === '1';
/** The unlimited downstream: the simulator at a fixed 50 ms, no jitter. */
export const DOWNSTREAM_HOLD_MS = 50;
export const OPEN_CONNECTIONS = 2000;
export const CLOSED_CONNECTIONS = 4000;

/** Generator processes per run (BENCH_GENERATORS, default 1): more on a many-core machine, where one cannot keep up. */
export const GENERATORS = Math.max(1, Number(process.env.BENCH_GENERATORS ?? 1));

/** Seconds: warm-up and measured window of an open-loop run, of a closed-loop run, and the drain after the last send. */
export const TIME = QUICK ? { warmup: 0.5, measure: 1, closedWarmup: 0.5, closed: 1, drain: 3 } : { warmup: 3, measure: 10, closedWarmup: 2, closed: 10, drain: 10 };

/** The servers compared, alternated round by round; BENCH_FLOOR=0 leaves the floor out. */
export const VARIANTS: readonly Variant[] = process.env.BENCH_FLOOR === '0' ? ['bare', 'sidecar'] : ['bare', 'floor', 'sidecar'];

/** Rounds of each variant, alternated (BENCH_ROUNDS; 1 when quick). */
export const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 2)));

/** SIDECAR_ENV: a JSON object of extra sidecar variables (knobs to try), values as strings. */
export function extraSidecarEnv(): Record<string, string> {
  const raw = process.env.SIDECAR_ENV;
  if (raw === undefined || raw === '') return {};
  return Object.fromEntries(Object.entries(JSON.parse(raw) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
}

/** The sidecar under test (and the floor, which takes its batching knobs). */
export function sidecarEnv(downstreamUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { DOWNSTREAM_URL: downstreamUrl, BATCH_MAX_WAIT_MS: '10', SHARD_COUNT: '4', ...extraSidecarEnv(), ...extra };
}

/**
 * Small JSON items with distinct keys, body i landing on shard i mod 16 with
 * 16 shards (so evenly over 1, 2, 4, 8 or 16): any 16 consecutive bodies spread
 * the load as many independent keys would.
 */
export function makeBodies(n: number): string[] {
  const bodies: string[] = [];
  for (let i = 0, k = 0; i < n; i++) {
    let key = `user-${k++}`;
    while (shardForKey(key, 16) !== i % 16) key = `user-${k++}`;
    bodies.push(JSON.stringify({ key, op: 'lookup', payload: { id: i, note: 'benchmark item' } }));
  }
  return bodies;
}
