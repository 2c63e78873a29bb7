/**
 * Key → shard routing, a pure function (SPEC §2):
 * murmurhash3 x86 32-bit of the key's UTF-8 bytes, seed 0, mod SHARD_COUNT.
 *
 * murmurhash3js-revisited hashes bytes: given a plain string it returns
 * undefined, which would route every request to shard NaN. So the key is
 * encoded first, always.
 */
import murmur from 'murmurhash3js-revisited';

export const MAX_KEY_BYTES = 256;

export function shardForKey(key: string, shardCount: number): number {
  return murmur.x86.hash32(Buffer.from(key, 'utf8'), 0) % shardCount;
}

/** Is the key's UTF-8 encoding longer than MAX_KEY_BYTES? */
export function isKeyTooLong(key: string): boolean {
  // A UTF-16 code unit encodes to 1..3 UTF-8 bytes, so the length alone settles
  // most keys without encoding them.
  if (key.length * 3 <= MAX_KEY_BYTES) return false;
  if (key.length > MAX_KEY_BYTES) return true;
  return Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES;
}
