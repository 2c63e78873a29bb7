/**
 * Micro-benchmark of what SERVER_TIMING adds to one answer: the real reply
 * sink answering through a real Fastify reply (inject), with the header on and
 * off, in alternating rounds. Prints CPU per answer and the difference; set it
 * against the sidecar's whole CPU per request (about 100 µs on the 2-core
 * development machine, `node bench/compare.ts`).
 *
 *   node bench/micro/server-timing-cost.ts
 */
import Fastify, { type FastifyReply } from 'fastify';
import { Batch, Item } from '../../src/actors/batch.ts';
import { createAnswers, createReplySink } from '../../src/http/reply-sink.ts';
import { Lifecycle } from '../../src/lifecycle.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';

const N = Number(process.env.N ?? 20_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const RESULT = { echo: { key: 'user-1', id: 1, payload: 'x'.repeat(40) } };

async function app(serverTiming: boolean) {
  const metrics = new Metrics({ batchMaxSize: 100, stats: () => [] });
  const sink = createReplySink(createAnswers(new Lifecycle(), metrics, { serverTiming }));
  // One answered batch, as after a downstream call of 50 ms.
  const batch = new Batch('bench-0-1', 0, performance.now());
  batch.sentAt = batch.firstSentAt = performance.now();
  batch.downstreamMs = 50.3;
  batch.answered = true;
  const server = Fastify();
  server.post('/process', (_request, reply: FastifyReply): void => {
    const now = performance.now();
    sink.resolve(new Item(Buffer.from('{}'), now - 7, now + 10_000, reply), RESULT, batch);
  });
  await server.ready();
  return server;
}

async function cpuPerAnswer(serverTiming: boolean): Promise<number> {
  const server = await app(serverTiming);
  const options = { method: 'POST' as const, url: '/process', payload: '{}', headers: { 'content-type': 'application/json' } };
  for (let i = 0; i < 2_000; i++) await server.inject(options); // warm-up
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) await server.inject(options);
  const used = process.cpuUsage(before);
  await server.close();
  return (used.user + used.system) / N;
}

const on: number[] = [];
const off: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? [false, true] : [true, false];
  for (const serverTiming of order) (serverTiming ? on : off).push(await cpuPerAnswer(serverTiming));
  console.log(`round ${round + 1}: off ${off.at(-1)!.toFixed(2)} µs, on ${on.at(-1)!.toFixed(2)} µs per answer`);
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`median: off ${median(off).toFixed(2)} µs, on ${median(on).toFixed(2)} µs, SERVER_TIMING adds ${(median(on) - median(off)).toFixed(2)} µs per answer`);
