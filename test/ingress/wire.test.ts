/** The groups that cross between an ingress thread and the batcher thread (src/ingress/wire.ts). */
import { describe, expect, it } from 'vitest';
import { Batch, Item } from '../../src/actors/batch.ts';
import { fromWire, SidecarErrors, toWire, type SidecarError } from '../../src/errors.ts';
import { AnswerGroupWriter, ItemGroupWriter, ownerOf, readAnswers, readItems, SLOTS_PER_THREAD, type Answer } from '../../src/ingress/wire.ts';

function item(text: string, acceptedAt: number): Item {
  return new Item(Buffer.from(text), acceptedAt, acceptedAt + 1000, null);
}

describe('item groups', () => {
  it('carry slot, shard, bodies, times on the batcher clock and sampled trace links, in order', () => {
    // This thread's clock is 25 ms ahead of a batcher thread started 25 ms earlier.
    const writer = new ItemGroupWriter(performance.timeOrigin - 25);
    const traced = item('{"b":"é"}', 200);
    traced.traceLink = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1 };
    writer.add(7, 2, item('{"a":1}', 100));
    writer.add(3, 0, traced);
    writer.add(9, 1, item('[]', 300));
    const group = writer.take();
    expect(writer.size).toBe(0);

    const read: { shard: number; item: Item }[] = [];
    readItems(group, 2 * SLOTS_PER_THREAD, (shard, taken) => read.push({ shard, item: taken }));
    expect(read.map(({ shard }) => shard)).toEqual([2, 0, 1]);
    expect(read.map(({ item }) => item.body.toString())).toEqual(['{"a":1}', '{"b":"é"}', '[]']);
    expect(read.map(({ item }) => item.acceptedAt)).toEqual([125, 225, 325]);
    expect(read.map(({ item }) => item.deadline)).toEqual([1125, 1225, 1325]);
    expect(read.map(({ item }) => ownerOf(item.owner as number))).toEqual([
      { thread: 2, slot: 7 },
      { thread: 2, slot: 3 },
      { thread: 2, slot: 9 },
    ]);
    expect(read[0].item.traceLink).toBeNull();
    expect(read[1].item.traceLink).toMatchObject({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1 });
  });

  it('can be transferred: the bodies are one fresh buffer, not a view of the shared Buffer pool', () => {
    const writer = new ItemGroupWriter(performance.timeOrigin);
    writer.add(0, 0, item('{"x":1}', 0));
    const group = writer.take();
    expect(group.bodies.byteOffset).toBe(0);
    expect(group.bodies.buffer.byteLength).toBe(group.bodies.length);
    const { port1 } = new MessageChannel();
    port1.postMessage(group, [group.meta.buffer, group.bodies.buffer]);
    port1.close();
    expect(group.bodies.buffer.byteLength).toBe(0); // moved, not copied
  });
});

describe('answer groups', () => {
  it("carry results and errors with each batch's id once, timings and shards", () => {
    const writer = new AnswerGroupWriter();
    const batch = new Batch('b-1', 3, 0);
    const other = new Batch('b-2', 1, 0);
    const queueFull: SidecarError = new SidecarErrors.SIDECAR_ERR_QUEUE_FULL(2);
    queueFull.retryAfterSeconds = 4;
    writer.add(5, 3, batch, 9.5, 50.25, true, '{"echo":1}');
    writer.add(6, 3, batch, 9.7, 50.25, true, '{"echo":2}');
    writer.add(1, 1, other, 2, 12, false, toWire(new SidecarErrors.SIDECAR_ERR_DEADLINE_EXCEEDED()));
    writer.add(2, 2, null, -1, 0, false, toWire(queueFull));
    const group = writer.take();
    expect(group.batchIds).toEqual(['b-1', 'b-2']);
    expect(writer.size).toBe(0);

    const read: Answer[] = [];
    readAnswers(group, (answer) => read.push({ ...answer }));
    expect(read.map(({ slot, shard, batchId, queueMs, downstreamMs, ended }) => ({ slot, shard, batchId, queueMs, downstreamMs, ended }))).toEqual([
      { slot: 5, shard: 3, batchId: 'b-1', queueMs: 9.5, downstreamMs: 50.25, ended: true },
      { slot: 6, shard: 3, batchId: 'b-1', queueMs: 9.7, downstreamMs: 50.25, ended: true },
      { slot: 1, shard: 1, batchId: 'b-2', queueMs: 2, downstreamMs: 12, ended: false },
      { slot: 2, shard: 2, batchId: null, queueMs: -1, downstreamMs: 0, ended: false },
    ]);
    expect(read[0].payload).toBe('{"echo":1}');
    const deadline = fromWire(read[2].payload as ReturnType<typeof toWire>);
    expect(deadline).toBeInstanceOf(Error);
    expect(deadline).toMatchObject({ code: 'SIDECAR_ERR_DEADLINE_EXCEEDED', statusCode: 504 });
    const refused = fromWire(read[3].payload as ReturnType<typeof toWire>);
    expect(refused).toMatchObject({ code: 'SIDECAR_ERR_QUEUE_FULL', statusCode: 503, message: queueFull.message, retryAfterSeconds: 4 });
  });
});
