import { WINDOW_MODES, type WindowMode } from './actors/batch-window.ts';
import { CONCURRENCY_MODES, type ConcurrencyMode } from './actors/call-gate.ts';

/**
 * Configuration: one typed, frozen object read from the environment once at
 * startup. The rest of the service receives this object and never reads
 * `process.env` itself. Every variable is described once, in VARIABLES below;
 * `--help` prints that table and the README's Configuration table mirrors it.
 */

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly downstreamUrl: URL;
  readonly shardCount: number;
  readonly batchMaxSize: number;
  readonly batchMaxWaitMs: number;
  readonly batchWindowMode: WindowMode;
  readonly batchMinWaitMs: number;
  readonly batchMaxBytes: number;
  readonly maxInflightBatches: number;
  /** `adaptive`: one call limit for all shards, learned from the downstream's latency; `fixed`: MAX_INFLIGHT_BATCHES per shard. */
  readonly downstreamConcurrency: ConcurrencyMode;
  /** Longest expected wait in the sidecar an item is taken for (ms); beyond it, 503 at once. */
  readonly maxQueueWaitMs: number;
  readonly maxQueuePerShard: number;
  readonly maxBodyBytes: number;
  readonly requestTimeoutMs: number;
  readonly downstreamTimeoutMs: number;
  readonly downstreamRetries: number;
  readonly shutdownDelayMs: number;
  readonly shutdownTimeoutMs: number;
  readonly shardKeyField: string;
  readonly logLevel: LogLevel;
  /** Answer `server-timing` (queue, downstream, sidecar) on answers whose batch was sent. */
  readonly serverTiming: boolean;
  /** Result field that marks a per-item failure (422); null when unset (results pass through). */
  readonly itemErrorField: string | null;
  /** Bisect a batch the downstream failed (non-2xx or bad body) to isolate the failing items. */
  readonly isolateFailedBatches: boolean;
  /** Header carrying the edge stamp, lower case; null when empty (stamps ignored). */
  readonly requestStartHeader: string | null;
  /** Admission control: the edge wait a standing backlog may reach before old requests get 503 (ms); 0 = no such refusal. */
  readonly admissionMaxEdgeWaitMs: number;
  /** HTTP ingress threads; 1 serves HTTP on the batcher's own thread (ADR 0017). */
  readonly ingressThreads: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A bad value: the message names the variable and what it accepts. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, accepts: string, value: string) {
    super(`${variable}=${JSON.stringify(value)} is invalid: ${variable} accepts ${accepts}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

interface Variable {
  readonly name: string;
  readonly fallback: string;
  readonly meaning: string;
}

/** The table `--help` prints; order and wording match SPEC §6. */
export const VARIABLES: readonly Variable[] = [
  { name: 'PORT', fallback: '8080', meaning: 'ingress listener port' },
  { name: 'HOST', fallback: '0.0.0.0', meaning: 'ingress listener address' },
  { name: 'DOWNSTREAM_URL', fallback: '(required)', meaning: 'batch endpoint, full http(s) URL with path' },
  { name: 'SHARD_COUNT', fallback: '4', meaning: 'number of shard actors' },
  { name: 'BATCH_MAX_SIZE', fallback: '100', meaning: 'size trigger: items per batch' },
  { name: 'BATCH_MAX_WAIT_MS', fallback: '10', meaning: "time trigger, counted from a batch's first item" },
  {
    name: 'BATCH_WINDOW_MODE',
    fallback: 'fixed',
    meaning: 'fixed or adaptive (window within BATCH_MIN_WAIT_MS..BATCH_MAX_WAIT_MS, wider as calls in flight fill up)',
  },
  { name: 'BATCH_MIN_WAIT_MS', fallback: '1', meaning: 'lower bound of the adaptive window (<= BATCH_MAX_WAIT_MS)' },
  { name: 'BATCH_MAX_BYTES', fallback: '1048576', meaning: 'byte cap of one batch body (the whole JSON array)' },
  {
    name: 'MAX_INFLIGHT_BATCHES',
    fallback: '8',
    meaning: 'downstream calls in flight per shard (fixed), or its product with SHARD_COUNT as the ceiling of the adaptive limit',
  },
  {
    name: 'DOWNSTREAM_CONCURRENCY',
    fallback: 'adaptive',
    meaning: "adaptive (one call limit for all shards, learned from the downstream's latency) or fixed",
  },
  {
    name: 'MAX_QUEUE_WAIT_MS',
    fallback: '1000',
    meaning: 'longest expected wait in the sidecar before an item is refused with 503 (it is never queued to expire)',
  },
  { name: 'MAX_QUEUE_PER_SHARD', fallback: '10000', meaning: 'waiting items per shard before 503' },
  { name: 'MAX_BODY_BYTES', fallback: '65536', meaning: 'largest accepted item body' },
  { name: 'REQUEST_TIMEOUT_MS', fallback: '10000', meaning: 'default item deadline (x-timeout-ms may lower it)' },
  { name: 'DOWNSTREAM_TIMEOUT_MS', fallback: '5000', meaning: 'bound on one downstream call' },
  { name: 'DOWNSTREAM_RETRIES', fallback: '0', meaning: 'retries of connection errors and 502/503/504' },
  { name: 'SHUTDOWN_DELAY_MS', fallback: '0', meaning: 'time /readyz is 503 before the listener closes' },
  { name: 'SHUTDOWN_TIMEOUT_MS', fallback: '25000', meaning: 'bound on the whole drain' },
  { name: 'SHARD_KEY_FIELD', fallback: 'key', meaning: 'body field used as shard key' },
  { name: 'LOG_LEVEL', fallback: 'info', meaning: `pino level: ${LOG_LEVELS.join('|')}` },
  { name: 'SERVER_TIMING', fallback: 'true', meaning: 'server-timing header (queue, downstream, sidecar ms) on answers: true|false' },
  { name: 'ITEM_ERROR_FIELD', fallback: '(unset)', meaning: 'result field that marks a per-item failure, answered 422' },
  {
    name: 'ISOLATE_FAILED_BATCHES',
    fallback: 'false',
    meaning: 'bisect a failed batch to find the failing items (resends items): true|false',
  },
  {
    name: 'REQUEST_START_HEADER',
    fallback: 'x-request-start',
    meaning: "header with the load balancer's receipt time (t=<s.ms>, epoch ms or µs): deadlines count from it (empty: ignore)",
  },
  {
    name: 'ADMISSION_MAX_EDGE_WAIT_MS',
    fallback: '500',
    meaning: 'admission control: while edge waits stand above this, requests that waited longer, and too long to be answered within MAX_QUEUE_WAIT_MS, get 503 (0 = off)',
  },
  {
    name: 'INGRESS_THREADS',
    fallback: '1',
    meaning: 'HTTP ingress threads feeding one global batcher (1 = HTTP on the batcher thread; set to the CPUs given)',
  },
  { name: 'OTEL_*', fallback: '(standard)', meaning: 'OpenTelemetry SDK variables' },
];

export function helpText(): string {
  const width = Math.max(...VARIABLES.map((v) => v.name.length));
  const fallbackWidth = Math.max(...VARIABLES.map((v) => v.fallback.length));
  const rows = VARIABLES.map(
    (v) => `  ${v.name.padEnd(width)}  ${v.fallback.padEnd(fallbackWidth)}  ${v.meaning}`,
  );
  return [
    'batching-sidecar: coalesces POST /process requests into batches for a slow downstream.',
    '',
    'Configuration (environment variables):',
    `  ${'variable'.padEnd(width)}  ${'default'.padEnd(fallbackWidth)}  meaning`,
    ...rows,
    '',
  ].join('\n');
}

function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const accepts = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  if (!/^\d+$/.test(value)) throw new ConfigError(name, accepts, value);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(name, accepts, value);
  return n;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const lower = value.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw new ConfigError(name, 'true or false', value);
}

function downstreamUrl(env: Env): URL {
  const value = raw(env, 'DOWNSTREAM_URL');
  const accepts = 'an absolute http:// or https:// URL, path included (required)';
  if (value === undefined) throw new ConfigError('DOWNSTREAM_URL', accepts, '');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('DOWNSTREAM_URL', accepts, value);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('DOWNSTREAM_URL', accepts, value);
  return url;
}

/** Reads and validates every variable; throws ConfigError on the first bad one. */
export function loadConfig(env: Env): Config {
  const maxBodyBytes = integer(env, 'MAX_BODY_BYTES', 65536, 2);
  const batchMaxBytes = integer(env, 'BATCH_MAX_BYTES', 1048576, 2);
  // The largest accepted item must fit a batch on its own: "[" + item + "]".
  if (batchMaxBytes < maxBodyBytes + 2) {
    throw new ConfigError(
      'BATCH_MAX_BYTES',
      `an integer >= MAX_BODY_BYTES + 2 (${maxBodyBytes + 2}) so the largest item fits a batch`,
      String(batchMaxBytes),
    );
  }
  const logLevel = raw(env, 'LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `one of ${LOG_LEVELS.join(', ')}`, logLevel);
  }
  const batchMaxWaitMs = integer(env, 'BATCH_MAX_WAIT_MS', 10, 0, 2 ** 31 - 1);
  const batchWindowMode = raw(env, 'BATCH_WINDOW_MODE') ?? 'fixed';
  if (!(WINDOW_MODES as readonly string[]).includes(batchWindowMode)) {
    throw new ConfigError('BATCH_WINDOW_MODE', `one of ${WINDOW_MODES.join(', ')}`, batchWindowMode);
  }
  // Default 1, or BATCH_MAX_WAIT_MS when that is 0; a value set above BATCH_MAX_WAIT_MS is an error.
  const batchMinWaitMs = integer(env, 'BATCH_MIN_WAIT_MS', Math.min(1, batchMaxWaitMs), 0, 2 ** 31 - 1);
  if (batchMinWaitMs > batchMaxWaitMs) {
    throw new ConfigError('BATCH_MIN_WAIT_MS', `an integer from 0 to BATCH_MAX_WAIT_MS (${batchMaxWaitMs})`, String(batchMinWaitMs));
  }
  const downstreamConcurrency = raw(env, 'DOWNSTREAM_CONCURRENCY') ?? 'adaptive';
  if (!(CONCURRENCY_MODES as readonly string[]).includes(downstreamConcurrency)) {
    throw new ConfigError('DOWNSTREAM_CONCURRENCY', `one of ${CONCURRENCY_MODES.join(', ')}`, downstreamConcurrency);
  }
  // Empty turns stamps off: read without trim-to-undefined, as SHARD_KEY_FIELD is.
  const requestStartHeader = (env.REQUEST_START_HEADER ?? 'x-request-start').trim().toLowerCase();
  if (requestStartHeader !== '' && !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(requestStartHeader)) {
    throw new ConfigError('REQUEST_START_HEADER', 'an HTTP header name, or empty to ignore edge stamps', requestStartHeader);
  }
  const shardKeyField = env.SHARD_KEY_FIELD ?? 'key';
  if (shardKeyField === '') throw new ConfigError('SHARD_KEY_FIELD', 'a non-empty field name', shardKeyField);
  // Unset or empty: no per-item errors, every result passes through unchanged.
  const itemErrorField = raw(env, 'ITEM_ERROR_FIELD') ?? null;

  return Object.freeze({
    port: integer(env, 'PORT', 8080, 0, 65535),
    host: raw(env, 'HOST') ?? '0.0.0.0',
    downstreamUrl: downstreamUrl(env),
    shardCount: integer(env, 'SHARD_COUNT', 4, 1, 1024),
    batchMaxSize: integer(env, 'BATCH_MAX_SIZE', 100, 1),
    batchMaxWaitMs,
    batchWindowMode: batchWindowMode as WindowMode,
    batchMinWaitMs,
    batchMaxBytes,
    maxInflightBatches: integer(env, 'MAX_INFLIGHT_BATCHES', 8, 1),
    downstreamConcurrency: downstreamConcurrency as ConcurrencyMode,
    maxQueueWaitMs: integer(env, 'MAX_QUEUE_WAIT_MS', 1000, 1, 2 ** 31 - 1),
    maxQueuePerShard: integer(env, 'MAX_QUEUE_PER_SHARD', 10000, 1),
    maxBodyBytes,
    requestTimeoutMs: integer(env, 'REQUEST_TIMEOUT_MS', 10000, 1, 2 ** 31 - 1),
    downstreamTimeoutMs: integer(env, 'DOWNSTREAM_TIMEOUT_MS', 5000, 1, 2 ** 31 - 1),
    downstreamRetries: integer(env, 'DOWNSTREAM_RETRIES', 0, 0, 10),
    shutdownDelayMs: integer(env, 'SHUTDOWN_DELAY_MS', 0, 0, 2 ** 31 - 1),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 25000, 1, 2 ** 31 - 1),
    shardKeyField,
    logLevel: logLevel as LogLevel,
    serverTiming: boolean(env, 'SERVER_TIMING', true),
    itemErrorField,
    isolateFailedBatches: boolean(env, 'ISOLATE_FAILED_BATCHES', false),
    requestStartHeader: requestStartHeader === '' ? null : requestStartHeader,
    admissionMaxEdgeWaitMs: integer(env, 'ADMISSION_MAX_EDGE_WAIT_MS', 500, 0, 2 ** 31 - 1),
    ingressThreads: integer(env, 'INGRESS_THREADS', 1, 1, 64),
  });
}
