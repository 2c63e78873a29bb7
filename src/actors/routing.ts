/**
 * Key → shard routing, a pure function (SPEC §2):
 * murmurhash3 x86 32-bit of the key's UTF-8 bytes, seed 0, mod SHARD_COUNT.
 *
 * murmurhash3js-revisited hashes bytes: given a plain string it returns
 * undefined, which would route every request to shard NaN. So routing takes
 * the key's bytes. A key from the body is encoded as UTF-8; a key from the
 * x-shard-key header arrives as Node's latin1 reading of the bytes on the wire,
 * which `Buffer.from(value, 'latin1')` gives back exactly (see keyBytes).
 */
import murmur from 'murmurhash3js-revisited';

export const MAX_KEY_BYTES = 256;

export function shardForBytes(key: Uint8Array, shardCount: number): number {
  return murmur.x86.hash32(key, 0) % shardCount;
}

export function shardForKey(key: string, shardCount: number): number {
  return shardForBytes(Buffer.from(key, 'utf8'), shardCount);
}

/** The bytes of a key: a header value as sent on the wire, a body field as UTF-8. */
export function keyBytes(key: string, from: 'header' | 'body'): Buffer {
  return Buffer.from(key, from === 'header' ? 'latin1' : 'utf8');
}

/** Routes keys to shards; items without a key are spread round-robin. */
export class ShardRouter {
  readonly shardCount: number;
  private nextUnkeyed = 0;

  constructor(shardCount: number) {
    this.shardCount = shardCount;
  }

  route(key: Uint8Array | undefined): number {
    if (key !== undefined) return shardForBytes(key, this.shardCount);
    const shard = this.nextUnkeyed;
    this.nextUnkeyed = shard + 1 === this.shardCount ? 0 : shard + 1;
    return shard;
  }
}
