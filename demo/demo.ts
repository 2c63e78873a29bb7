/**
 * `npm run demo`: a simulated legacy downstream (50 ms ± 10 ms per call), the
 * sidecar in front of it, and a load generator in its own process
 * (bench/generator.ts, open loop: each request sent at its scheduled time,
 * latency counted from that time), in three phases:
 *
 *   1. steady: a rate this machine sustains (DEMO_RATE, 1,000 req/s, for
 *      DEMO_STEADY_S, 5 s): client p50/p99, the sidecar's own
 *      sidecar_overhead_seconds p99 beside the 15 ms target, batch sizes and
 *      downstream calls per 1,000 requests;
 *   2. burst: beyond capacity (DEMO_BURST_RATE, 25,000 req/s, for DEMO_BURST_S,
 *      3 s): answered, ok, shed (503, with retry-after or not), errors, p99 of
 *      all answers;
 *   3. recovery: back at the steady rate (DEMO_RECOVERY_S, 5 s), p99 second by
 *      second, against the steady phase's.
 *
 * Then the sidecar keeps serving until Ctrl-C, which drains it gracefully
 * (DEMO_EXIT=1: drain and exit at once, for CI). About 20 s before that.
 *
 * Environment: DEMO_PORT (sidecar, default 8080), DEMO_CONNECTIONS (2000),
 * DEMO_LATENCY_MS (50), DEMO_JITTER_MS (10), the DEMO_* above, any sidecar
 * variable (SHARD_COUNT, BATCH_MAX_SIZE, ...), and SIDECAR_ENV (a JSON object of
 * any other sidecar variables, as for bench/hot-path.ts).
 */
import { histogram, histogramDelta, quantile, scrape, type Scrape } from '../bench/metrics.ts';
import { extraSidecarEnv, makeBodies } from '../bench/hot-path.ts';
import { runGenerator, type GeneratorEvent } from '../bench/generator-process.ts';
import type { SecondResult, Segment, SegmentResult } from '../bench/segment-loop.ts';
import { LegacyDownstream } from '../sim/legacy-downstream.ts';
import { startSidecar } from '../sim/sidecar-process.ts';

const env = process.env;
const port = env.DEMO_PORT ?? '8080';
const connections = Number(env.DEMO_CONNECTIONS ?? 2000);
const latencyMs = Number(env.DEMO_LATENCY_MS ?? 50);
const jitterMs = Number(env.DEMO_JITTER_MS ?? 10);
const rate = Number(env.DEMO_RATE ?? 1000);
const steadyS = Number(env.DEMO_STEADY_S ?? 5);
const burstRate = Number(env.DEMO_BURST_RATE ?? 25_000);
const burstS = Number(env.DEMO_BURST_S ?? 3);
const recoveryS = Number(env.DEMO_RECOVERY_S ?? 5);
const TARGET_MS = 15;
const tty = process.stdout.isTTY === true;

const downstream = await LegacyDownstream.start({ latencyMs, jitterMs });
const sidecarEnv: Record<string, string> = {};
for (const [name, value] of Object.entries(env)) {
  if (value !== undefined && /^(SHARD_|BATCH_|MAX_|REQUEST_|DOWNSTREAM_|SHUTDOWN_|LOG_LEVEL|OTEL_|ADMISSION_)/.test(name)) {
    sidecarEnv[name] = value;
  }
}
const sidecar = await startSidecar({ ...sidecarEnv, ...extraSidecarEnv(), PORT: port, HOST: '127.0.0.1', DOWNSTREAM_URL: downstream.url });
console.log(`\nlegacy downstream: ${downstream.url} (${latencyMs} ms ± ${jitterMs} ms per call)`);
console.log(`sidecar:           ${sidecar.url}/process`);
console.log(`load generator:    its own process, open loop, up to ${connections} connections\n`);

const segments: Segment[] = [
  { label: 'warmup', rate: Math.min(rate, 1000), seconds: 1 },
  { label: 'steady', rate, seconds: steadyS },
  { label: 'burst', rate: burstRate, seconds: burstS },
  { label: 'recovery', rate, seconds: recoveryS },
];
const titles = ['warming up', `1. steady at ${rate} req/s`, `2. burst at ${burstRate} req/s`, `3. recovery at ${rate} req/s`];

/** What the sidecar's metrics and the downstream's counters read when each segment began, and at the end. */
interface Mark {
  readonly scrape: Promise<Scrape | null>;
  readonly batches: number;
  readonly items: number;
  readonly sizes: number[];
}
const marks: Mark[] = [];
const mark = (): Mark => ({ scrape: scrape(sidecar.url), batches: downstream.batches, items: downstream.items, sizes: [...downstream.sizes] });

let current = -1;
let segmentStart = performance.now();
const progress = setInterval(() => {
  if (current < 0) return;
  const segment = segments[current]!;
  const elapsed = Math.min(segment.seconds, (performance.now() - segmentStart) / 1000);
  const bar = '#'.repeat(Math.round((20 * elapsed) / segment.seconds)).padEnd(20, '.');
  const line = `  ${titles[current]!.padEnd(28)} [${bar}] ${elapsed.toFixed(1)}/${segment.seconds} s · downstream: ${downstream.items} items in ${downstream.batches} calls, ${downstream.inflight} in flight`;
  if (tty) process.stdout.write(`\r${line}\x1b[K`);
}, 200);
const onEvent = (e: GeneratorEvent): void => {
  if (e.event === 'segment' && e.index !== undefined) {
    if (e.index > 0) marks.push(mark());
    if (tty && current >= 0) process.stdout.write('\n');
    current = e.index;
    segmentStart = performance.now();
    if (!tty) console.log(`  ${titles[current]} for ${segments[current]!.seconds} s`);
  } else if (e.event === 'sent') {
    marks.push(mark());
    if (tty) process.stdout.write('\n');
    console.log('  all sent; waiting for the last answers');
  }
};
const result = await runGenerator(
  { mode: 'open', origin: sidecar.url, connections, segments, bodies: makeBodies(64), drainS: 15 },
  onEvent,
);
clearInterval(progress);
const scrapes = await Promise.all(marks.map((m) => m.scrape));
const [steady, burst, recovery] = [result.segments[1]!, result.segments[2]!, result.segments[3]!];

const f = (n: number | null | undefined, d = 1): string => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));

/** sidecar_overhead_seconds between marks a and b (indices into marks: 0 = steady start). */
function overhead(a: number, b: number): { p50: string; p99: number | null; overflow: boolean } {
  const h = histogramDelta(histogram(scrapes[a] ?? null, 'sidecar_overhead_seconds'), histogram(scrapes[b] ?? null, 'sidecar_overhead_seconds'));
  const p99 = quantile(h, 0.99);
  return { p50: f((quantile(h, 0.5)?.value ?? Number.NaN) * 1000), p99: p99 === null ? null : p99.value * 1000, overflow: p99?.overflow ?? false };
}

function printBatches(a: Mark, b: Mark): void {
  const calls = b.batches - a.batches;
  const items = b.items - a.items;
  console.log(`  downstream:       ${calls} calls for ${items} items = ${((1000 * calls) / Math.max(1, items)).toFixed(1)} calls per 1,000 requests, mean batch ${(items / Math.max(1, calls)).toFixed(1)}`);
  const sizes = b.sizes.map((count, size) => ({ size, count: (count ?? 0) - (a.sizes[size] ?? 0) })).filter((entry) => entry.count > 0);
  let from = 1;
  for (const to of [1, 10, 25, 50, 75, 99, 100, Infinity]) {
    const count = sizes.filter((entry) => entry.size >= from && entry.size <= to).reduce((sum, entry) => sum + entry.count, 0);
    if (count > 0) {
      const label = to === Infinity ? `>${from - 1}` : from === to ? `${to}` : `${from}-${to}`;
      console.log(`    ${label.padStart(7)} items: ${'#'.repeat(Math.max(1, Math.round((count / calls) * 40))).padEnd(40)} ${count}`);
    }
    from = to + 1;
  }
}

function outcomes(s: SegmentResult): string {
  const errors = Object.entries(s.errors).map(([code, n]) => `${n} ${code}`).join(', ');
  return (
    `${s.sent} sent: ${s.answered} answered (${s.ok} ok, ${s.shed} shed with 503, ${s.shedWithRetryAfter} of them with retry-after, ` +
    `${s.otherStatus} other), ${s.errorCount} errors${errors ? ` (${errors})` : ''}, ${s.unfinished} unanswered`
  );
}

const steadyOverhead = overhead(0, 1);
const steadyP99 = steady.latencyMs?.p99 ?? null;
console.log(`\n1. steady, ${rate} req/s for ${steadyS} s (open loop)`);
console.log(`  requests:         ${outcomes(steady)}`);
console.log(`  latency (client): p50 ${f(steady.latencyMs?.p50)} ms, p99 ${f(steadyP99)} ms (the downstream holds each batch ${latencyMs}–${latencyMs + jitterMs} ms)`);
console.log(
  `  overhead p99:     ${steadyOverhead.overflow ? '> ' : ''}${f(steadyOverhead.p99)} ms, target ≤ ${TARGET_MS} ms: ` +
    `${steadyOverhead.p99 === null ? 'n/a' : !steadyOverhead.overflow && steadyOverhead.p99 <= TARGET_MS ? 'within' : 'OVER'} ` +
    `(sidecar_overhead_seconds, p50 ${steadyOverhead.p50} ms: time in the sidecar less the downstream call, the ${env.BATCH_MAX_WAIT_MS ?? 10} ms window included; ` +
    'it starts at Fastify\'s request start, so time waiting in the socket is not in it)',
);
printBatches(marks[0]!, marks[1]!);

console.log(`\n2. burst, ${burstRate} req/s offered for ${burstS} s`);
console.log(`  requests:         ${outcomes(burst)}`);
console.log(`  latency (client): p50 ${f(burst.latencyMs?.p50, 0)} ms, p99 ${f(burst.latencyMs?.p99, 0)} ms of all answers, max ${f(burst.latencyMs?.max, 0)} ms`);
console.log(`  served:           ${f(burst.servedPerSecond, 0)} ok/s arrived during the burst (offered ${burstRate}/s)`);
console.log(`  generator:        send lag p99 ${f(burst.sendLagMs?.p99)} ms (how late it sent: it shares the CPUs), ${f(result.cpu.percent, 0)}% of a core over the run`);
if (burst.shed === 0) {
  console.log('  nothing was shed: admission control found the event loop keeping up (ADMISSION_MAX_LOOP_DELAY_MS); the excess waited in queues instead (see the latency)');
} else {
  console.log(`  shed:             ${burst.shed} × 503 ${burst.shedWithRetryAfter === burst.shed ? 'all' : `${burst.shedWithRetryAfter} of them`} with retry-after, refused before their bodies were read (admission control: the event loop was saturated)`);
}

console.log(`\n3. recovery, ${rate} req/s for ${recoveryS} s`);
console.log(`  requests:         ${outcomes(recovery)}`);
const recoverySeconds = result.seconds.filter((s: SecondResult) => s.segment === 'recovery');
const limit = steadyP99 === null ? null : steadyP99 + TARGET_MS;
let backAt: number | null = null;
for (const [i, s] of recoverySeconds.entries()) {
  const ok = limit !== null && s.p99 !== null && s.p99 <= limit && s.unfinished + s.errors === 0;
  if (ok && backAt === null) backAt = i;
  if (!ok) backAt = null;
  console.log(`    second ${i + 1}: p99 ${f(s.p99)} ms (${s.ok} ok, ${s.shed} shed, ${s.errors + s.unfinished} failed)`);
}
console.log(
  `  p99 back to normal (≤ steady p99 + ${TARGET_MS} ms = ${f(limit)} ms, and stayed there): ` +
    (backAt === null ? 'not within this phase' : `from second ${backAt + 1} of the recovery`),
);
const recoveryOverhead = overhead(2, 3);
console.log(`  overhead p99:     ${recoveryOverhead.overflow ? '> ' : ''}${f(recoveryOverhead.p99)} ms over the recovery phase`);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  // The sidecar runs in its own process group, so Ctrl-C reaches it only
  // through this one signal (a second one would make it exit at once).
  sidecar.signal('SIGINT');
  const exit = await sidecar.exited;
  await downstream.close();
  console.log(`sidecar drained and exited with code ${exit.code}`);
  process.exit(exit.code ?? 1);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

if (env.DEMO_EXIT === '1') {
  console.log('\nDEMO_EXIT=1: draining and stopping.');
  await stop();
} else {
  console.log(`\nThe sidecar keeps serving at ${sidecar.url}/process — try:`);
  console.log(`  curl -s -XPOST ${sidecar.url}/process -H 'content-type: application/json' -d '{"key":"a","hello":"world"}'`);
  console.log('Press Ctrl-C to drain and stop.\n');
}
