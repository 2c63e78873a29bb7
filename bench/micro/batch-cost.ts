/**
 * What one batch costs, in two parts (ADR 0013, docs/performance.md "What bounds it"):
 *
 *   batcher  the sidecar's own batch path (Batcher → ShardQueue → shard actor's
 *            xstate event → dispatchBatch → settle), with a downstream that
 *            answers on the next turn and a sink that does nothing: CPU per
 *            batch for batches of 1, 3 and 12 items (size trigger, no window).
 *   undici   one downstream call through the sidecar's DownstreamClient (undici
 *            Pool, dispatch API) to the simulated downstream (50 ms, in its own
 *            process), 400 calls a second from 4 timers as 4 shards would make
 *            them at 5,000 req/s, against the same timers making no call: CPU
 *            per call, this process only.
 *
 *   node bench/micro/batch-cost.ts [batcher|undici ...]   (both when none)
 */
import { Batcher } from '../../src/actors/batcher.ts';
import { Item } from '../../src/actors/batch.ts';
import { DownstreamClient, type Downstream, type DownstreamAnswer, type DownstreamRequest } from '../../src/downstream/client.ts';
import { killAll, startDownstream } from '../children.ts';

const BODY = Buffer.from('{"key":"user-1","op":"lookup","payload":{"id":1,"note":"benchmark item"}}');

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

async function batcherCost(size: number, batches: number): Promise<number> {
  const results = Array.from({ length: size }, () => ({ echo: 1 }));
  const downstream: Downstream = {
    send: (request: DownstreamRequest) =>
      new Promise<DownstreamAnswer>((resolve) => setImmediate(() => resolve({ ok: true, status: 200, results: results.slice(0, request.count), durationMs: 1 }))),
    close: async () => undefined,
    destroy: async () => undefined,
  };
  let answered = 0;
  let wake: () => void = () => undefined;
  const sink = {
    resolve: () => {
      if (++answered % size === 0) wake();
    },
    reject: () => {
      throw new Error('an item was refused');
    },
  };
  const config = { shardCount: 4, batchMaxSize: size, batchMaxWaitMs: 10, batchMaxBytes: 1 << 20, maxInflightBatches: 8, maxQueuePerShard: 10_000 };
  const batcher = new Batcher({ config, downstream, sink }).start();
  const run = async (n: number): Promise<void> => {
    for (let b = 0; b < n; b++) {
      const done = new Promise<void>((resolve) => (wake = resolve));
      for (let i = 0; i < size; i++) {
        const now = performance.now();
        batcher.submit(b % 4, new Item(BODY, now, now + 10_000, null));
      }
      await done;
    }
  };
  await run(5_000); // warm-up
  const before = cpuMicros();
  await run(batches);
  const perBatch = (cpuMicros() - before) / batches;
  batcher.stop();
  return perBatch;
}

/** CPU µs per second of this process while 4 timers fire `callsPerSecond` times a second in all, each firing making a call or not. */
async function timedCalls(call: (() => Promise<void>) | null, callsPerSecond: number, seconds: number): Promise<{ calls: number; cpuPerCall: number }> {
  const period = 4_000 / callsPerSecond;
  let calls = 0;
  let stop = false;
  const tick = (): void => {
    if (stop) return;
    if (call === null) calls++;
    else void call().then(() => calls++);
    setTimeout(tick, period);
  };
  for (let shard = 0; shard < 4; shard++) setTimeout(tick, (shard * period) / 4);
  await new Promise((resolve) => setTimeout(resolve, 3_000)); // warm-up
  const before = cpuMicros();
  const from = calls;
  await new Promise((resolve) => setTimeout(resolve, seconds * 1_000));
  const cpu = cpuMicros() - before;
  const made = calls - from;
  stop = true;
  return { calls: made, cpuPerCall: cpu / made };
}

async function undiciCost(): Promise<{ call: number; timersOnly: number }> {
  const simulator = await startDownstream(50);
  const client = new DownstreamClient({
    downstreamUrl: new URL(`${simulator.url}/batch`),
    downstreamTimeoutMs: 5_000,
    downstreamRetries: 0,
    shardCount: 4,
    maxInflightBatches: 8,
  });
  const items = 12;
  const body = Buffer.from(`[${Array.from({ length: items }, () => BODY.toString()).join(',')}]`);
  try {
    const timersOnly = await timedCalls(null, 400, 10);
    const calls = await timedCalls(
      async () => {
        const answer = await client.send({ batchId: 'b', shard: 0, body, count: items, deadline: performance.now() + 10_000, signal: new AbortController().signal });
        if (!answer.ok) throw new Error(`the call failed: ${answer.error.message}`);
      },
      400,
      10,
    );
    return { call: calls.cpuPerCall, timersOnly: timersOnly.cpuPerCall };
  } finally {
    await client.close();
    await simulator.stop();
    killAll();
  }
}

const asked = process.argv.slice(2);
if (asked.length === 0 || asked.includes('batcher')) {
  for (const size of [1, 3, 12]) {
    const perBatch = await batcherCost(size, 40_000);
    console.log(`batcher, ${size} item(s) a batch: ${perBatch.toFixed(1)} µs CPU per batch, ${(perBatch / size).toFixed(1)} per item`);
  }
}
if (asked.length === 0 || asked.includes('undici')) {
  const { call, timersOnly } = await undiciCost();
  console.log(`undici call, 400 a second: ${call.toFixed(1)} µs CPU per call against ${timersOnly.toFixed(1)} with the timers alone: ${(call - timersOnly).toFixed(1)} µs a call`);
}
