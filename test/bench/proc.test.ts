import { describe, expect, it } from 'vitest';
import { cpuNanoseconds, sampleThreads, threadCpuBetween } from '../../bench/kit/proc.ts';

describe('per-thread CPU', () => {
  it('splits the main thread, each worker thread in tid order, and the rest', () => {
    const before = [
      { tid: 10, name: 'MainThread', cpuSeconds: 1 },
      { tid: 11, name: 'V8Worker', cpuSeconds: 0.5 },
      { tid: 20, name: 'WorkerThread', cpuSeconds: 0.2 },
      { tid: 19, name: 'WorkerThread', cpuSeconds: 0.1 },
    ];
    const after = [
      { tid: 10, name: 'MainThread', cpuSeconds: 3 },
      { tid: 11, name: 'V8Worker', cpuSeconds: 0.75 },
      { tid: 12, name: 'libuv-worker', cpuSeconds: 0.25 },
      { tid: 20, name: 'WorkerThread', cpuSeconds: 2.2 },
      { tid: 19, name: 'WorkerThread', cpuSeconds: 1.1 },
    ];
    expect(threadCpuBetween(before, after)).toEqual({ main: 2, workers: [1, 2], other: 0.5 });
    expect(threadCpuBetween(null, after)).toBeNull();
  });

  it('reads this process: a main thread with some CPU time', () => {
    const threads = sampleThreads(process.pid);
    expect(threads).not.toBeNull();
    expect(threads!.length).toBeGreaterThan(0);
    expect(threads!.every((t) => Number.isFinite(t.cpuSeconds) && t.cpuSeconds >= 0)).toBe(true);
    expect(sampleThreads(2 ** 22 + 12345)).toBeNull();
  });

  it('reads this process to the nanosecond: 5 ms of work shows as about 5 ms', () => {
    const before = cpuNanoseconds(process.pid)!;
    // 5 ms of CPU, not of the clock: on a busy machine the thread may wait for a core meanwhile.
    const start = process.cpuUsage();
    while (process.cpuUsage(start).user < 5_000);
    const used = cpuNanoseconds(process.pid)! - before;
    expect(used).toBeGreaterThan(4e6);
    expect(used).toBeLessThan(1e9);
    expect(cpuNanoseconds(2 ** 22 + 12345)).toBeNull();
  });
});
