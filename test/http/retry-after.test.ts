import { describe, expect, it } from 'vitest';
import { retryAfterValue } from '../../src/http/retry-after.ts';

describe('retryAfterValue', () => {
  it.each([
    [null, '1'],
    [undefined, '1'],
    [Number.NaN, '1'],
    [0, '1'],
    [0.2, '1'],
    [1, '1'],
    [1.01, '1'],
    [1.06, '2'],
    [6, '6'],
    [6.02, '6'],
    [6.3, '7'],
    [59.5, '60'],
    [60, '60'],
    [3600, '60'],
    [Number.POSITIVE_INFINITY, '60'],
  ])('turns a wait of %s s into retry-after %s (ceil of the tenths, clamped to 1..60)', (seconds, value) => {
    expect(retryAfterValue(seconds)).toBe(value);
  });
});
