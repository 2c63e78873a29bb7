import { describe, expect, it } from 'vitest';
import { isKeyTooLong, shardForKey } from '../../src/actors/routing.ts';

describe('routing', () => {
  it('maps a key to murmurhash3 x86 32-bit of its UTF-8 bytes, seed 0, mod SHARD_COUNT', () => {
    // Published MurmurHash3_x86_32 vectors (seed 0).
    expect(shardForKey('', 2 ** 32)).toBe(0);
    expect(shardForKey('hello', 2 ** 32)).toBe(0x248bfa47);
    expect(shardForKey('The quick brown fox jumps over the lazy dog', 2 ** 32)).toBe(0x2e4ff723);
    expect(shardForKey('hello', 4)).toBe(0x248bfa47 % 4);
  });

  it('hashes multi-byte characters as their UTF-8 bytes, never as UTF-16 units', () => {
    expect(shardForKey('é', 2 ** 32)).not.toBe(shardForKey('\u00e9'.normalize('NFD'), 2 ** 32));
    for (const key of ['δέλτα', '🔑', 'ключ']) {
      const shard = shardForKey(key, 16);
      expect(Number.isInteger(shard)).toBe(true);
      expect(shard).toBeGreaterThanOrEqual(0);
      expect(shard).toBeLessThan(16);
    }
  });

  it('spreads distinct keys over every shard', () => {
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[shardForKey(`key-${i}`, 8)]++;
    for (const count of counts) expect(count).toBeGreaterThan(700);
  });

  it('measures key length in UTF-8 bytes against the 256-byte limit', () => {
    expect(isKeyTooLong('a'.repeat(256))).toBe(false);
    expect(isKeyTooLong('a'.repeat(257))).toBe(true);
    expect(isKeyTooLong('é'.repeat(128))).toBe(false); // 256 bytes
    expect(isKeyTooLong('é'.repeat(129))).toBe(true); // 258 bytes, 129 characters
    expect(isKeyTooLong('🔑'.repeat(64))).toBe(false); // 256 bytes
    expect(isKeyTooLong('🔑'.repeat(65))).toBe(true);
  });
});
