/**
 * The load generator as its own process (issue 10: "the generator in its own
 * process, with its own CPU reported"), spawned by bench/hot-path.ts and
 * demo/demo.ts with this Node binary. One JSON config in argv[2]:
 *
 *   {"mode":"open","origin":"http://127.0.0.1:N","connections":2000,
 *    "segments":[{"label":"warmup","rate":1000,"seconds":1},{"label":"measure","rate":1000,"seconds":10}],
 *    "bodies":["{...}",...],"drainS":8}
 *   {"mode":"closed","origin":...,"connections":4000,"seconds":10,"bodies":[...],
 *    "warmupSeconds":2,"warmupConnections":200}
 *
 * Open mode runs bench/segment-loop.ts (fixed-rate, latency from each
 * request's intended send time); closed mode runs autocannon
 * (bench/closed-loop.ts). Prints JSON lines on stdout, one per event, so the
 * parent can sample the server's CPU and metrics at the right moments:
 *
 *   {"event":"segment","index":i}   the first request of segment i is due
 *   {"event":"warm"}                closed mode: the warm-up run is over
 *   {"event":"start"}               closed mode: every connection is up, load begins
 *   {"event":"sent"}                every request has been handed to the pool
 *   {"event":"result",...}          last line: the figures, and this process's own CPU
 *
 * Its own CPU (process.cpuUsage) is counted over the sending window (first
 * measured segment, i.e. the first not labelled "warmup", to the last send)
 * and over its whole life.
 */
import { closedLoop } from './closed-loop.ts';
import { SegmentLoop, type Segment } from './segment-loop.ts';

export interface GeneratorConfig {
  readonly mode: 'open' | 'closed';
  readonly origin: string;
  readonly path?: string;
  readonly connections: number;
  readonly bodies: readonly string[];
  /** Open mode. */
  readonly segments?: readonly Segment[];
  readonly drainS?: number;
  /** Closed mode. */
  readonly seconds?: number;
  /** Open mode: stamp `x-request-start` at each request's intended send time (SegmentLoopOptions.stamp). */
  readonly stamp?: boolean;
  /** Closed mode: a short closed-loop run first (JIT warm-up), left out of the figures. */
  readonly warmupSeconds?: number;
  readonly warmupConnections?: number;
}

export interface GeneratorCpu {
  /** CPU seconds (user + system) of the generator over the window, and as % of one core. */
  readonly seconds: number;
  readonly percent: number;
  readonly windowSeconds: number;
  /** CPU seconds over the generator's whole life (start-up and drain included). */
  readonly totalSeconds: number;
}

/** Open mode, over the whole schedule: requests due, handed to the pool, and written to a socket. */
export interface GeneratorRequests {
  readonly total: number;
  readonly sent: number;
  readonly written: number;
}

function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function cpuSeconds(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1e6;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as GeneratorConfig;
  const bodies = config.bodies.map((body) => Buffer.from(body));
  let c0 = process.cpuUsage();
  let w0 = performance.now();
  if (config.mode === 'closed') {
    if ((config.warmupSeconds ?? 0) > 0) {
      const url = `${config.origin}${config.path ?? '/process'}`;
      await closedLoop({ url, connections: config.warmupConnections ?? 200, durationSeconds: config.warmupSeconds!, bodies });
      emit({ event: 'warm' });
    }
    const result = await closedLoop({
      url: `${config.origin}${config.path ?? '/process'}`,
      connections: config.connections,
      durationSeconds: config.seconds ?? 10,
      bodies,
      onStart: () => {
        c0 = process.cpuUsage();
        w0 = performance.now();
        emit({ event: 'start' });
      },
    });
    const windowSeconds = (performance.now() - w0) / 1000;
    const used = cpuSeconds(process.cpuUsage(c0));
    emit({ event: 'sent' });
    const cpu: GeneratorCpu = { seconds: used, percent: (100 * used) / windowSeconds, windowSeconds, totalSeconds: cpuSeconds(process.cpuUsage()) };
    emit({ event: 'result', mode: 'closed', closed: result, cpu });
    return;
  }
  const segments = config.segments ?? [];
  const firstMeasured = Math.max(0, segments.findIndex((segment) => segment.label !== 'warmup'));
  const loop = new SegmentLoop({
    origin: config.origin,
    path: config.path ?? '/process',
    segments,
    bodies,
    connections: config.connections,
    stamp: config.stamp,
    drainTimeoutMs: (config.drainS ?? 8) * 1000,
    onSegment: (index) => {
      if (index === firstMeasured) {
        c0 = process.cpuUsage();
        w0 = performance.now();
      }
      emit({ event: 'segment', index });
    },
  });
  await loop.start();
  const windowSeconds = (performance.now() - w0) / 1000;
  const used = cpuSeconds(process.cpuUsage(c0));
  emit({ event: 'sent' });
  const result = await loop.finish();
  const cpu: GeneratorCpu = { seconds: used, percent: windowSeconds > 0 ? (100 * used) / windowSeconds : 0, windowSeconds, totalSeconds: cpuSeconds(process.cpuUsage()) };
  // Over the whole schedule (warm-up included): requests due, handed to the pool, and written to a socket (the rest never left).
  const requests: GeneratorRequests = { total: loop.total, sent: loop.sent, written: loop.written };
  emit({ event: 'result', mode: 'open', ...result, cpu, requests });
}

try {
  await main();
  process.exit(0);
} catch (error) {
  process.stderr.write(`generator failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
