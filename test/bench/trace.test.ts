import { describe, expect, it } from 'vitest';
import { GcRecorder, parseGcLine } from '../../bench/kit/trace.ts';

// Lines as Node 24.21 (V8 13) prints them with --trace-gc.
const SCAVENGE =
  '[4693:0x7fa7000]       31 ms: Scavenge 4.8 (5.8) -> 4.4 (6.8) MB, pooled: 0 MB, 3.61 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ';
const MARK_COMPACT =
  '[4701:0xbc3a000]       19 ms: Mark-Compact 3.9 (5.8) -> 3.7 (6.5) MB, pooled: 0 MB, 3.79 / 0.00 ms  (average mu = 0.753, current mu = 0.753) testing; GC in old space requested';
const REDUCE =
  '[12:0x55d0c]     5123 ms: Mark-Compact (reduce) 80.1 (90.2) -> 60.0 (88.0) MB, pooled: 0 MB, 12.50 / 0.10 ms  (+ 3.1 ms in 12 steps since start of marking, biggest step 0.9 ms, walltime since start of marking 40 ms) (average mu = 0.9) finalize incremental marking via task; GC in old space requested';

describe('bench/kit/trace.ts: GC pauses', () => {
  it('reads the kind and the main-thread pause of a --trace-gc line', () => {
    expect(parseGcLine(SCAVENGE)).toEqual({ kind: 'Scavenge', ms: 3.61 });
    expect(parseGcLine(MARK_COMPACT)).toEqual({ kind: 'Mark-Compact', ms: 3.79 });
    expect(parseGcLine(REDUCE)).toEqual({ kind: 'Mark-Compact (reduce)', ms: 12.5 });
  });

  it('leaves log lines alone', () => {
    expect(parseGcLine('{"level":30,"msg":"sidecar ready","port":8080}')).toBeNull();
  });

  it('summarises the pauses between two marks, by kind and all together', () => {
    const gc = new GcRecorder();
    gc.line(SCAVENGE);
    const from = gc.mark();
    gc.line(SCAVENGE);
    gc.line(REDUCE);
    const window = gc.window(from);
    expect(window.Scavenge).toMatchObject({ count: 1, maxMs: 3.61 });
    expect(window['Mark-Compact (reduce)']).toMatchObject({ count: 1, maxMs: 12.5 });
    expect(window.all).toMatchObject({ count: 2, maxMs: 12.5 });
  });
});

describe('bench/kit/trace.ts: GC pauses with worker threads', () => {
  const main = '[23882:0x2a136000]       82 ms: Scavenge 9.1 (10.1) -> 8.6 (11.1) MB, pooled: 0 MB, 0.75 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ';
  const worker = '[23882:0x7fa6100cc000]       14 ms: Scavenge 3.5 (4.5) -> 2.8 (5.5) MB, pooled: 0 MB, 4.43 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ';

  it('tells the isolates apart, the first seen being the main thread', () => {
    const gc = new GcRecorder();
    gc.line(main);
    const from = gc.mark();
    gc.line(worker);
    gc.line(main);
    gc.line(worker);
    const byIsolate = gc.windowByIsolate(from);
    expect(byIsolate.main.all).toMatchObject({ count: 1, maxMs: 0.75 });
    expect(byIsolate.workers.all).toMatchObject({ count: 2, maxMs: 4.43 });
    expect(gc.window(from).all).toMatchObject({ count: 3 });
  });

  it('has no worker pauses in a process without workers', () => {
    const gc = new GcRecorder();
    gc.line(main);
    gc.line(main);
    expect(gc.windowByIsolate(0).workers).toEqual({});
  });
});
