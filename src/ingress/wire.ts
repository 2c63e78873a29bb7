/**
 * What crosses between an ingress thread and the batcher thread (ADR 0017),
 * always in groups: everything one event-loop turn produced goes in one
 * message, never one message per request.
 *
 * - ingress → batcher: an ItemGroup. Per item five numbers in one
 *   Float64Array (its slot on the ingress thread, shard, accepted-at and
 *   deadline on the batcher thread's clock, body length) and every body in
 *   one byte array; both buffers are transferred, not copied. The batcher
 *   thread's items are views into that array (no copy per item either).
 * - batcher → ingress: an AnswerGroup. Per answer six numbers (slot, shard,
 *   batch index, queue ms, downstream ms, call ended), the result's JSON text
 *   (serialised on the batcher thread) or the error's fields, and each batch's
 *   id once.
 *
 * The rest are control messages: listen, phase changes, the shutdown steps, and calls with a reply
 * (the merged /metrics).
 */
import type { MessagePort, Worker } from 'node:worker_threads';
import type { SpanContext } from '@opentelemetry/api';
import { Item, type Batch } from '../actors/batch.ts';
import type { WireError } from '../errors.ts';
import type { Phase } from '../lifecycle.ts';

/** slot, shard, acceptedAt, deadline, body length */
const ITEM_FIELDS = 5;
/** slot, shard, batch index (-1: none), queue ms (-1: never sent), downstream ms, call ended (0/1) */
const ANSWER_FIELDS = 6;

export interface ItemGroup {
  readonly type: 'items';
  readonly meta: Float64Array<ArrayBuffer>;
  readonly bodies: Uint8Array<ArrayBuffer>;
  /** [index, traceId, spanId, traceFlags] for each item whose request span was sampled; null for none. */
  readonly links: (number | string)[] | null;
}

export interface AnswerGroup {
  readonly type: 'answers';
  readonly meta: Float64Array<ArrayBuffer>;
  /** Per answer: the result's JSON text, or the error. */
  readonly payloads: (string | WireError)[];
  readonly batchIds: string[];
}

/** A call that expects a reply with the same id. */
export interface CallMessage {
  readonly type: 'call';
  readonly id: number;
  readonly method: 'metrics' | 'metrics-json';
}

export interface ReplyMessage {
  readonly type: 'reply';
  readonly id: number;
  readonly value: unknown;
}

export type ToBatcher =
  | ItemGroup
  | CallMessage
  | ReplyMessage
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'listener-closed' }
  | { readonly type: 'connections-closed' };

export type ToIngress =
  | AnswerGroup
  | CallMessage
  | ReplyMessage
  | { readonly type: 'listen'; readonly port: number; readonly host: string }
  | { readonly type: 'phase'; readonly phase: Phase }
  | { readonly type: 'close' }
  | { readonly type: 'close-idle' }
  | { readonly type: 'close-all' }
  | { readonly type: 'stop' };

/** What an ingress thread is given at start. */
export interface IngressWorkerData {
  readonly index: number;
  /** The batcher thread's performance.timeOrigin: item times travel on its clock. */
  readonly batcherTimeOrigin: number;
}

/** Collects one turn's items on an ingress thread. */
export class ItemGroupWriter {
  private readonly slots: number[] = [];
  private readonly shards: number[] = [];
  private readonly items: Item[] = [];
  private bytes = 0;
  /** Added to this thread's performance.now() to get the batcher thread's. */
  private readonly clockOffset: number;

  constructor(batcherTimeOrigin: number) {
    this.clockOffset = performance.timeOrigin - batcherTimeOrigin;
  }

  get size(): number {
    return this.items.length;
  }

  add(slot: number, shard: number, item: Item): void {
    this.slots.push(slot);
    this.shards.push(shard);
    this.items.push(item);
    this.bytes += item.body.length;
  }

  /** The group of everything added since the last take; the writer is empty again. */
  take(): ItemGroup {
    const count = this.items.length;
    const meta = new Float64Array(count * ITEM_FIELDS);
    const bodies = new Uint8Array(this.bytes);
    let links: (number | string)[] | null = null;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const item = this.items[i];
      const at = i * ITEM_FIELDS;
      meta[at] = this.slots[i];
      meta[at + 1] = this.shards[i];
      meta[at + 2] = item.acceptedAt + this.clockOffset;
      meta[at + 3] = item.deadline + this.clockOffset;
      meta[at + 4] = item.body.length;
      bodies.set(item.body, offset);
      offset += item.body.length;
      const link = item.traceLink;
      if (link !== null) (links ??= []).push(i, link.traceId, link.spanId, link.traceFlags);
    }
    this.slots.length = 0;
    this.shards.length = 0;
    this.items.length = 0;
    this.bytes = 0;
    return { type: 'items', meta, bodies, links };
  }
}

/**
 * Reads a group on the batcher thread: `accept(shard, item)` for each item, in
 * arrival order. An item's owner is `ownerBase + slot` (see ownerOf).
 */
export function readItems(group: ItemGroup, ownerBase: number, accept: (shard: number, item: Item) => void): void {
  const { meta, bodies, links } = group;
  const count = meta.length / ITEM_FIELDS;
  const buffer = bodies.buffer;
  let offset = bodies.byteOffset;
  let nextLink = 0;
  for (let i = 0; i < count; i++) {
    const at = i * ITEM_FIELDS;
    const length = meta[at + 4];
    const item = new Item(Buffer.from(buffer, offset, length), meta[at + 2], meta[at + 3], ownerBase + meta[at]);
    offset += length;
    if (links !== null && links[nextLink] === i) {
      item.traceLink = {
        traceId: links[nextLink + 1] as string,
        spanId: links[nextLink + 2] as string,
        traceFlags: links[nextLink + 3] as number,
        isRemote: true,
      } satisfies SpanContext;
      nextLink += 4;
    }
    accept(meta[at + 1], item);
  }
}

/** Owners of a thread's items are numbered from index × SLOTS_PER_THREAD. */
export const SLOTS_PER_THREAD = 2 ** 32;

/** The ingress thread and slot an item's owner names. */
export function ownerOf(owner: number): { thread: number; slot: number } {
  const thread = Math.floor(owner / SLOTS_PER_THREAD);
  return { thread, slot: owner - thread * SLOTS_PER_THREAD };
}

/** Collects one turn's answers for one ingress thread, on the batcher thread. */
export class AnswerGroupWriter {
  private readonly meta: number[] = [];
  private readonly payloads: (string | WireError)[] = [];
  private readonly batchIds: string[] = [];
  private lastBatch: Batch | null = null;

  get size(): number {
    return this.payloads.length;
  }

  /**
   * One answer: `batch` null for an item never put in a batch, `shard` -1 for
   * none; queueMs -1 when the batch was never sent.
   */
  add(slot: number, shard: number, batch: Batch | null, queueMs: number, downstreamMs: number, ended: boolean, payload: string | WireError): void {
    let batchIndex = -1;
    if (batch !== null) {
      if (batch !== this.lastBatch) {
        this.batchIds.push(batch.id);
        this.lastBatch = batch;
      }
      batchIndex = this.batchIds.length - 1;
    }
    this.meta.push(slot, shard, batchIndex, queueMs, downstreamMs, ended ? 1 : 0);
    this.payloads.push(payload);
  }

  take(): AnswerGroup {
    const group: AnswerGroup = {
      type: 'answers',
      meta: Float64Array.from(this.meta),
      payloads: this.payloads.splice(0),
      batchIds: this.batchIds.splice(0),
    };
    this.meta.length = 0;
    this.lastBatch = null;
    return group;
  }
}

/** One answer of a group, as the ingress thread writes it. */
export interface Answer {
  slot: number;
  shard: number;
  /** null: the item was never put in a batch. */
  batchId: string | null;
  /** The batch's index in the group (answers of one batch come together); -1 for none. */
  batchIndex: number;
  queueMs: number;
  downstreamMs: number;
  ended: boolean;
  payload: string | WireError;
}

/** Calls `write` for each answer of a group, in order, with one reused Answer object. */
export function readAnswers(group: AnswerGroup, write: (answer: Answer) => void): void {
  const { meta, payloads, batchIds } = group;
  const answer: Answer = { slot: 0, shard: -1, batchId: null, batchIndex: -1, queueMs: -1, downstreamMs: 0, ended: false, payload: '' };
  for (let i = 0; i < payloads.length; i++) {
    const at = i * ANSWER_FIELDS;
    answer.slot = meta[at];
    answer.shard = meta[at + 1];
    answer.batchIndex = meta[at + 2];
    answer.batchId = answer.batchIndex >= 0 ? batchIds[answer.batchIndex] : null;
    answer.queueMs = meta[at + 3];
    answer.downstreamMs = meta[at + 4];
    answer.ended = meta[at + 5] === 1;
    answer.payload = payloads[i];
    write(answer);
  }
}

/** Something messages can be posted to: a Worker on the batcher thread, the parent port on an ingress thread. */
export type Port = Pick<Worker | MessagePort, 'postMessage'>;

/** Calls over a port that expect a reply (the merged /metrics); each bounded by a timeout. */
export class Calls {
  private next = 0;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();

  call<T>(port: Port, method: CallMessage['method'], timeoutMs: number): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no reply from the other thread in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      port.postMessage({ type: 'call', id, method } satisfies CallMessage);
    });
  }

  settle(reply: ReplyMessage): void {
    const call = this.pending.get(reply.id);
    if (call === undefined) return;
    this.pending.delete(reply.id);
    clearTimeout(call.timer);
    call.resolve(reply.value);
  }

  /** Fails every call still waiting (its thread is gone). */
  failAll(error: Error): void {
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(error);
    }
    this.pending.clear();
  }
}
