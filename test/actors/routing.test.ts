import { describe, expect, it } from 'vitest';
import { keyBytes, MAX_KEY_BYTES, shardForBytes, shardForKey } from '../../src/actors/routing.ts';

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

  it('takes a body key as UTF-8 and a header key as the bytes sent on the wire', () => {
    expect(keyBytes('é'.repeat(128), 'body')).toHaveLength(MAX_KEY_BYTES);
    expect(keyBytes('🔑'.repeat(65), 'body').length).toBeGreaterThan(MAX_KEY_BYTES);
    // Node reads header bytes as latin1: "é" sent as UTF-8 (C3 A9) arrives as "Ã©".
    const onTheWire = Buffer.from('é', 'utf8').toString('latin1');
    expect(keyBytes(onTheWire, 'header')).toEqual(Buffer.from('é', 'utf8'));
    expect(shardForBytes(keyBytes(onTheWire, 'header'), 7)).toBe(shardForKey('é', 7));
  });
});
