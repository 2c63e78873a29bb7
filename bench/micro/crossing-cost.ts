/**
 * What a thread crossing costs (ADR 0017): the real wire format
 * (src/ingress/wire.ts) between two real threads. This thread plays the
 * ingress thread: it puts items into groups of G and posts them; a worker
 * plays the batcher thread: it reads each group into Items and answers every
 * item at once with a result (one AnswerGroup per group); this thread reads
 * the answers. One group in flight at a time (ping-pong), so the round trip
 * is the crossing's latency with both threads otherwise idle.
 *
 * Prints, per group size, CPU per item on each side (process.threadCpuUsage)
 * and the round trip per group; set them against the ~40-60 µs of CPU a
 * request costs (bench/hot-path.ts).
 *
 *   node bench/micro/crossing-cost.ts        (N items per size, default 200,000)
 */
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { Batch, Item } from '../../src/actors/batch.ts';
import { AnswerGroupWriter, ItemGroupWriter, ownerOf, readAnswers, readItems, type AnswerGroup, type ItemGroup } from '../../src/ingress/wire.ts';

const N = Number(process.env.N ?? 200_000);
const GROUP_SIZES = [1, 10, 100];
const BODY = Buffer.from('{"key":"user-1234","id":5678,"payload":"xxxxxxxxxxxxxxxx"}');
const RESULT = JSON.stringify({ echo: { key: 'user-1234', id: 5678, payload: 'xxxxxxxxxxxxxxxx' } });

function cpuMicros(): number {
  const { user, system } = process.threadCpuUsage();
  return user + system;
}

if (isMainThread) {
  const worker = new Worker(new URL(import.meta.url));
  const replies: ((group: AnswerGroup) => void)[] = [];
  worker.on('message', (message: AnswerGroup | { cpu: number }) => {
    if ('type' in message) replies.shift()!(message);
  });
  const batcherCpu = (): Promise<number> =>
    new Promise((resolve) => {
      worker.once('message', (message: { cpu: number }) => resolve(message.cpu));
      worker.postMessage({ cpu: true });
    });

  const writer = new ItemGroupWriter(performance.timeOrigin);
  let answered = 0;
  const onAnswer = (): void => {
    answered++;
  };
  console.log(`crossing cost, ${N} items per group size (node ${process.version})`);
  console.log('| items per group | ingress thread CPU µs/item | batcher thread CPU µs/item | round trip µs/group |');
  console.log('|---|---|---|---|');
  for (const size of [GROUP_SIZES[0], ...GROUP_SIZES]) {
    // The first size runs twice: the first pass warms both threads up and is not printed.
    const warm = answered === 0;
    const batcherBefore = await batcherCpu();
    const before = cpuMicros();
    const started = performance.now();
    const groups = Math.ceil(N / size);
    for (let g = 0; g < groups; g++) {
      for (let i = 0; i < size; i++) {
        const now = performance.now();
        writer.add(i, i & 3, new Item(BODY, now, now + 10_000, null));
      }
      const group = writer.take();
      const answers = new Promise<AnswerGroup>((resolve) => replies.push(resolve));
      worker.postMessage(group, [group.meta.buffer, group.bodies.buffer]);
      readAnswers(await answers, onAnswer);
    }
    const elapsedMs = performance.now() - started;
    const ingressCpu = cpuMicros() - before;
    const batcher = (await batcherCpu()) - batcherBefore;
    if (!warm) {
      const items = groups * size;
      console.log(
        `| ${size} | ${(ingressCpu / items).toFixed(2)} | ${(batcher / items).toFixed(2)} | ${((elapsedMs * 1000) / groups).toFixed(1)} |`,
      );
    }
  }
  await worker.terminate();
} else {
  const port = parentPort!;
  const answers = new AnswerGroupWriter();
  const batch = new Batch('bench-0-1', 0, performance.now());
  port.on('message', (message: ItemGroup | { cpu: true }) => {
    if (!('type' in message)) {
      port.postMessage({ cpu: cpuMicros() });
      return;
    }
    readItems(message, 0, (shard, item) => {
      answers.add(ownerOf(item.owner as number).slot, shard, batch, 9.9, 50.1, true, RESULT);
    });
    const group = answers.take();
    port.postMessage(group, [group.meta.buffer]);
  });
}
