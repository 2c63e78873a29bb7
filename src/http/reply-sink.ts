/**
 * The ingress side of the batcher seam: how a settled item becomes an HTTP
 * answer. Each item's owner is its Fastify reply. A result is sent as JSON with
 * `x-batch-id` and `x-shard`; a failure goes through the error handler, which
 * gives it Fastify's error shape.
 */
import type { FastifyReply } from 'fastify';
import type { Batch, Item, ItemSink } from '../actors/batch.ts';
import type { SidecarError } from '../errors.ts';
import type { Lifecycle } from '../lifecycle.ts';

export function createReplySink(lifecycle: Lifecycle): ItemSink {
  return {
    resolve(item: Item, result: unknown, batch: Batch): void {
      const reply = item.owner as FastifyReply;
      reply.header('x-batch-id', batch.id).header('x-shard', batch.shard);
      if (lifecycle.isClosing) reply.header('connection', 'close');
      // Stringify explicitly: Fastify would send a string result as raw text.
      reply.type('application/json').send(JSON.stringify(result));
    },
    reject(item: Item, error: SidecarError, batch: Batch | null): void {
      const reply = item.owner as FastifyReply;
      if (batch !== null) reply.header('x-batch-id', batch.id).header('x-shard', batch.shard);
      reply.send(error);
    },
  };
}
