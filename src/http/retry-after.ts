/**
 * `retry-after` values: whole seconds, rounded up, clamped to 1..60. One
 * helper for every 503 that tells a caller when to come back (the queue-full
 * estimate of ADR 0015; admission control's overload answer may reuse it).
 */

export const RETRY_AFTER_MIN_SECONDS = 1;
export const RETRY_AFTER_MAX_SECONDS = 60;

// The 60 possible values, built once: shedding answers thousands a second.
const VALUES = Array.from({ length: RETRY_AFTER_MAX_SECONDS + 1 }, (_, seconds) => String(seconds));

/**
 * The header value for a wait of `seconds`: ceil, clamped to 1..60. An
 * unknown wait (null, undefined, NaN) gives the minimum. The wait is taken to
 * a tenth of a second before the ceil: an estimate of 6.02 s (60 items at a
 * measured 9.97 items/s, the few ms each call spends outside the downstream)
 * says 6, not 7; 6.3 s says 7.
 */
export function retryAfterValue(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !(seconds > RETRY_AFTER_MIN_SECONDS)) return VALUES[RETRY_AFTER_MIN_SECONDS];
  if (seconds >= RETRY_AFTER_MAX_SECONDS) return VALUES[RETRY_AFTER_MAX_SECONDS];
  return VALUES[Math.ceil(Math.round(seconds * 10) / 10)];
}
