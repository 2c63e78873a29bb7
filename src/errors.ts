/**
 * Every error the sidecar answers with, each with a stable `code` and HTTP
 * status, in one module (Fastify's own `lib/errors.js` pattern). The actors
 * create these without knowing about HTTP; src/http/error-handler.ts is the one
 * place that turns them into responses. docs/errors.md lists the same codes and
 * a test keeps the two in sync.
 *
 * Errors raised per item or per refused request skip the stack trace: under
 * overload thousands of them are created a second and the stack says nothing a
 * code does not.
 */
import createError from '@fastify/error';

const NO_STACK = false;

export const SidecarErrors = {
  SIDECAR_ERR_KEY_TOO_LONG: createError(
    'SIDECAR_ERR_KEY_TOO_LONG',
    'Shard key is longer than %s bytes',
    400,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_JSON_TOO_DEEP: createError(
    'SIDECAR_ERR_JSON_TOO_DEEP',
    'Body nests arrays and objects deeper than %s levels',
    400,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_INVALID_TIMEOUT: createError(
    'SIDECAR_ERR_INVALID_TIMEOUT',
    'Header x-timeout-ms must be a positive integer of milliseconds',
    400,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_QUEUE_FULL: createError(
    'SIDECAR_ERR_QUEUE_FULL',
    'Shard %s queue is full (MAX_QUEUE_PER_SHARD); retry later',
    503,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_QUEUE_WAIT: createError(
    'SIDECAR_ERR_QUEUE_WAIT',
    "The wait in shard %s would outlast the item's deadline or MAX_QUEUE_WAIT_MS; retry later",
    503,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_DRAINING: createError(
    'SIDECAR_ERR_DRAINING',
    'The sidecar is shutting down and takes no new work',
    503,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_OVERLOADED: createError(
    'SIDECAR_ERR_OVERLOADED',
    'The sidecar is overloaded (event loop saturated); retry later',
    503,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_SHUTDOWN_TIMEOUT: createError(
    'SIDECAR_ERR_SHUTDOWN_TIMEOUT',
    "Shutdown timeout passed before the item's result came",
    503,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_DOWNSTREAM_STATUS: createError(
    'SIDECAR_ERR_DOWNSTREAM_STATUS',
    'Downstream answered the batch with status %s',
    502,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_DOWNSTREAM_BAD_BODY: createError(
    'SIDECAR_ERR_DOWNSTREAM_BAD_BODY',
    'Downstream answer is not a JSON array of one result per item: %s',
    502,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_DOWNSTREAM_UNREACHABLE: createError(
    'SIDECAR_ERR_DOWNSTREAM_UNREACHABLE',
    'Downstream call failed: %s',
    502,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_DOWNSTREAM_TIMEOUT: createError(
    'SIDECAR_ERR_DOWNSTREAM_TIMEOUT',
    'Downstream call ran past DOWNSTREAM_TIMEOUT_MS (%s ms)',
    504,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_DEADLINE_EXCEEDED: createError(
    'SIDECAR_ERR_DEADLINE_EXCEEDED',
    "The item's deadline passed before its result came",
    504,
    Error,
    NO_STACK,
  ),
  SIDECAR_ERR_ITEM_REJECTED: createError('SIDECAR_ERR_ITEM_REJECTED', '%s', 422, Error, NO_STACK),
  SIDECAR_ERR_INTERNAL: createError('SIDECAR_ERR_INTERNAL', 'Batch handling failed: %s', 500),
} as const;

/** What every settled-with-failure item carries: a code and an HTTP status. */
export interface SidecarError extends Error {
  readonly code: string;
  readonly statusCode: number;
  /** For a 503 that tells the caller when to come back: the estimated wait, seconds (null: unknown). */
  retryAfterSeconds?: number | null;
}

/**
 * A SidecarError as it crosses from the batcher thread to an ingress thread
 * (ADR 0017): a structured clone keeps no class, so the fields travel and the
 * error is rebuilt on the other side with the same code, status and message.
 */
export interface WireError {
  readonly code: string;
  readonly statusCode: number;
  readonly message: string;
  readonly retryAfterSeconds: number | null;
}

export function toWire(error: SidecarError): WireError {
  return { code: error.code, statusCode: error.statusCode, message: error.message, retryAfterSeconds: error.retryAfterSeconds ?? null };
}

/** One error class per code and status, made on first use (a handful in a process's life). */
const rebuilt = new Map<string, new (message: string) => SidecarError>();

export function fromWire(wire: WireError): SidecarError {
  const key = `${wire.code} ${wire.statusCode}`;
  let ErrorClass = rebuilt.get(key);
  if (ErrorClass === undefined) {
    ErrorClass = createError(wire.code, '%s', wire.statusCode, Error, NO_STACK) as unknown as new (message: string) => SidecarError;
    rebuilt.set(key, ErrorClass);
  }
  const error = new ErrorClass(wire.message);
  if (wire.retryAfterSeconds !== null) error.retryAfterSeconds = wire.retryAfterSeconds;
  return error;
}
