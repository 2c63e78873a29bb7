/**
 * Loaded into a traced server under test (`node --import
 * bench/kit/probe-preload.ts`, bench/kit/launcher.ts), so that every variant
 * reports event-loop delay the same way: monitorEventLoopDelay at 10 ms, as
 * prom-client uses, less the 10 ms interval itself. On SIGUSR2 it prints
 * {"probe":"event-loop","thread":0,...} (ms) and starts afresh. Worker threads
 * inherit the --import; the main thread passes SIGUSR2 on to them over a
 * BroadcastChannel and each prints its own line (`thread`: its threadId).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { BroadcastChannel, isMainThread, threadId } from 'node:worker_threads';

const RESOLUTION_MS = 10;
const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
histogram.enable();

const beyond = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);

function report(): void {
  const line = {
    probe: 'event-loop',
    thread: threadId,
    count: histogram.count,
    p50Ms: histogram.count > 0 ? beyond(histogram.percentile(50)) : null,
    p99Ms: histogram.count > 0 ? beyond(histogram.percentile(99)) : null,
    maxMs: histogram.count > 0 ? beyond(histogram.max) : null,
  };
  histogram.reset();
  // process.stdout on a pipe is synchronous on Linux: this line cannot interleave with a log line.
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// Never keeps a thread alive by itself.
const channel = new BroadcastChannel('bench-probe-event-loop');
channel.unref();
if (isMainThread) {
  process.on('SIGUSR2', () => {
    channel.postMessage('report');
    report();
  });
} else {
  channel.onmessage = () => report();
}
