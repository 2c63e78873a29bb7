/**
 * The batcher thread's side of INGRESS_THREADS (src/ingress/threads.ts) when
 * an ingress thread dies: a real worker thread (test/support/dying-ingress-thread.ts)
 * that exits after it starts listening.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Batch, Item } from '../../src/actors/batch.ts';
import { IngressThreads } from '../../src/ingress/threads.ts';
import { SLOTS_PER_THREAD } from '../../src/ingress/wire.ts';
import { Lifecycle } from '../../src/lifecycle.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';

describe('an ingress thread that dies', () => {
  it('is fatal: logged, reported once per thread, and its answers are dropped, never thrown', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    const failures: Error[] = [];
    const threads = new IngressThreads({
      count: 2,
      log,
      lifecycle: new Lifecycle(),
      metrics: new Metrics({ batchMaxSize: 10, processMetrics: false }),
      onFatal: (error) => failures.push(error),
      workerUrl: new URL('../support/dying-ingress-thread.ts', import.meta.url),
    });
    threads.attach({ route: () => 0, submit: () => null });

    expect(await threads.listen(0, '127.0.0.1')).toBe(4242);
    await expect.poll(() => failures.length, { timeout: 5_000 }).toBe(2);
    expect(failures[0].message).toMatch(/exited with code 3/);
    const fatal = lines.filter((line) => line.level === 60);
    expect(fatal.map((line) => line.msg)).toEqual([
      'ingress thread exited: its connections are gone; shutting down',
      'ingress thread exited: its connections are gone; shutting down',
    ]);
    expect(fatal.map((line) => line.ingressThread).sort()).toEqual([0, 1]);

    // Items the dead thread handed over are still settled by their shards: nothing to answer to.
    const owner = 1 * SLOTS_PER_THREAD + 5;
    expect(() => threads.sink.resolve(new Item(Buffer.from('{}'), 0, 1000, owner), { ok: true }, new Batch('b-1', 0, 0))).not.toThrow();
    // The shutdown steps do not wait for threads that are gone.
    await expect(threads.close()).resolves.toBeDefined();
    await expect(threads.stop()).resolves.toBeUndefined();
    await expect(threads.exposition()).resolves.toContain('sidecar_requests_total');
  });
});
