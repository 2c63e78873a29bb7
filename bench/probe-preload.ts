/**
 * Loaded into a server under test with `node --import bench/probe-preload.ts`
 * (bench/hot-path.ts does this for the bare route and the sidecar alike), so
 * both report event-loop delay the same way: monitorEventLoopDelay at 10 ms
 * resolution, as prom-client's default metrics use. On SIGUSR2 it prints one
 * line on stdout, {"probe":"event-loop",...} in ms, and starts afresh: the
 * parent signals at the start of the measured window (that line is discarded)
 * and at its end.
 *
 * The histogram's figures include the 10 ms timer interval itself (an idle
 * loop reads p99 ≈ 10.2 ms): the line reports the delay beyond it.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const RESOLUTION_MS = 10;
const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
histogram.enable();

const beyond = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);

process.on('SIGUSR2', () => {
  const line = {
    probe: 'event-loop',
    count: histogram.count,
    p50Ms: histogram.count > 0 ? beyond(histogram.percentile(50)) : null,
    p99Ms: histogram.count > 0 ? beyond(histogram.percentile(99)) : null,
    maxMs: histogram.count > 0 ? beyond(histogram.max) : null,
  };
  histogram.reset();
  // process.stdout on a pipe is synchronous on Linux: this line cannot interleave with a log line.
  process.stdout.write(`${JSON.stringify(line)}\n`);
});
