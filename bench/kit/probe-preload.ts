/**
 * Loaded into a server under test with `node --import bench/kit/probe-preload.ts`
 * (bench/kit/launcher.ts does this for every server it traces), so
 * both report event-loop delay the same way: monitorEventLoopDelay at 10 ms
 * resolution, as prom-client's default metrics use. On SIGUSR2 it prints one
 * line on stdout, {"probe":"event-loop","thread":0,...} in ms, and starts
 * afresh: the parent signals at the start of the measured window (that line is
 * discarded) and at its end.
 *
 * Worker threads inherit the --import, so each has a probe of its own
 * (monitorEventLoopDelay measures the thread it runs on). A worker gets no
 * signals: the main thread's probe passes SIGUSR2 on over a BroadcastChannel,
 * and each worker prints the same line with its own `thread` (its threadId),
 * a little after the main thread's (a worker's stdout goes through the main
 * thread).
 *
 * The histogram's figures include the 10 ms timer interval itself (an idle
 * loop reads p99 ≈ 10.2 ms): the line reports the delay beyond it.
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
