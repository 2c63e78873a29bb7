/**
 * `npm run demo`: the shield at work. A simulated legacy downstream with a
 * finite capacity (sim/legacy-downstream.ts: DEMO_WORKERS workers, each call
 * DEMO_LATENCY_MS + DEMO_PER_ITEM_MS per item; 4 × (50 ms + 0.5 ms/item) by
 * default: at most 4,000 items/s in full batches of 100), the sidecar in front
 * of it in its default configuration, and a load generator in its own process
 * (bench/kit/generator.ts, open loop: each request sent at its scheduled time,
 * latency counted from that time), in three phases after a 1 s warm-up:
 *
 *   1. steady: below the downstream's capacity (DEMO_RATE, 1,000 req/s, for
 *      DEMO_STEADY_S, 5 s), with the overhead p99 (beside the 15 ms target
 *      when the downstream has room: DEMO_WORKERS=0);
 *   2. surge: well past it (DEMO_SURGE_RATE, 6,000 req/s, for DEMO_SURGE_S,
 *      5 s): batches grow, the downstream runs at its maximum, and the excess
 *      is refused with 503 + retry-after;
 *   3. recovery: back at the steady rate (DEMO_RECOVERY_S, 5 s).
 *
 * For each phase (demo/report.ts): client answers (200 / 503 with retry-after /
 * 504 / other), p50/p99 of the 200s, mean batch size, the downstream's items/s
 * against its maximum and its own queue wait p99, the sidecar's call limit
 * (gauge sidecar_downstream_concurrency_limit, n/a where not exported), the
 * sidecar overhead p99, and a line per second. Then the sidecar keeps serving
 * until Ctrl-C (DEMO_EXIT=1: drain and exit at once, for CI). A Ctrl-C at any
 * moment stops everything the demo started (demo/stopper.ts).
 *
 * The generator stamps each request `x-request-start` at its intended send
 * time, as a load balancer in front does (SPEC §2): a backlog in its
 * connection pool is then an edge wait the sidecar sees, and refuses by age
 * (ADR 0021). DEMO_STAMP=0 sends no stamp: the backlog then waits in the pool,
 * unseen, and nothing is refused.
 *
 * Environment: DEMO_PORT (sidecar, default 8080), DEMO_CONNECTIONS (2000),
 * DEMO_WORKERS (4), DEMO_LATENCY_MS (50), DEMO_PER_ITEM_MS (0.5),
 * DEMO_JITTER_MS (0), DEMO_QUEUE_LIMIT (0: an unbounded FIFO), the DEMO_* above
 * (DEMO_BURST_RATE and DEMO_BURST_S are the surge's former names), any sidecar
 * variable (SHARD_COUNT, BATCH_MAX_SIZE, ...), and SIDECAR_ENV (a JSON object of
 * any other sidecar variables, as for the bench).
 */
import { extraSidecarEnv, makeBodies } from '../bench/kit/workload.ts';
import { runGenerator, type GeneratorEvent } from '../bench/kit/generator.ts';
import type { Segment } from '../bench/kit/open-loop.ts';
import { LegacyDownstream, maxItemsPerSecond } from '../sim/legacy-downstream.ts';
import { startSidecar } from '../sim/sidecar-process.ts';
import { Live, type PhaseView } from './live.ts';
import { f, overhead, printPhase, TARGET_MS } from './report.ts';
import { Stopper } from './stopper.ts';

const env = process.env;
const num = (name: string, fallback: number, alias?: string): number => Number(env[name] ?? (alias === undefined ? undefined : env[alias]) ?? fallback);
const port = env.DEMO_PORT ?? '8080';
const connections = num('DEMO_CONNECTIONS', 2000);
const shape = { workers: num('DEMO_WORKERS', 4), latencyMs: num('DEMO_LATENCY_MS', 50), perItemMs: num('DEMO_PER_ITEM_MS', 0.5) };
const jitterMs = num('DEMO_JITTER_MS', 0);
const queueLimit = num('DEMO_QUEUE_LIMIT', 0);
const rate = num('DEMO_RATE', 1000);
const steadyS = num('DEMO_STEADY_S', 5);
const surgeRate = num('DEMO_SURGE_RATE', 6000, 'DEMO_BURST_RATE');
const surgeS = num('DEMO_SURGE_S', 5, 'DEMO_BURST_S');
const recoveryS = num('DEMO_RECOVERY_S', 5);
const stamp = process.env.DEMO_STAMP !== '0';
const batchMaxSize = num('BATCH_MAX_SIZE', 100);
const maximum = maxItemsPerSecond(shape, batchMaxSize);

// Before anything starts: from here on, a Ctrl-C stops whatever has been started.
const stopper = new Stopper(Number(env.SHUTDOWN_TIMEOUT_MS ?? 25_000) + 5_000);
stopper.install();

try {
  await main();
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  await stopper.stop(1);
}

async function main(): Promise<void> {
  const downstream = await stopper.step(LegacyDownstream.start({ ...shape, jitterMs, queueLimit }));
  stopper.downstream = downstream;
  const sidecarEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && /^(SHARD_|BATCH_|MAX_|REQUEST_|DOWNSTREAM_|SHUTDOWN_|LOG_LEVEL|OTEL_|ADMISSION_)/.test(name)) sidecarEnv[name] = value;
  }
  const extra = { ...sidecarEnv, ...extraSidecarEnv() };
  const capacity = Number.isFinite(maximum)
    ? `at most ${maximum.toLocaleString('en-US', { maximumFractionDigits: 0 })} items/s in full batches of ${batchMaxSize}`
    : 'no limit (DEMO_WORKERS=0)';
  console.log(`\nlegacy downstream: ${downstream.url}`);
  console.log(
    `  its shape:       ${shape.workers || 'unlimited'} workers, each call ${shape.latencyMs} ms + ${shape.perItemMs} ms per item` +
      `${jitterMs > 0 ? ` + 0–${jitterMs} ms jitter` : ''}: ${capacity}; calls beyond the workers wait in its ` +
      `${queueLimit > 0 ? `queue (503 beyond ${queueLimit})` : 'unbounded FIFO queue'}`,
  );
  stopper.sidecar = await stopper.step(startSidecar({ ...extra, PORT: port, HOST: '127.0.0.1', DOWNSTREAM_URL: downstream.url }));
  const sidecar = stopper.sidecar;
  const settings = Object.keys(extra);
  console.log(`sidecar:           ${sidecar.url}/process, ${settings.length === 0 ? 'default configuration' : `defaults but ${settings.join(', ')}`}`);
  console.log(`load generator:    its own process, open loop, up to ${connections} connections${stamp ? ", each request stamped x-request-start at its send time (as a load balancer in front would)" : ", no edge stamp"}\n`);

  const segments: Segment[] = [
    { label: 'warmup', rate: Math.min(rate, 1000), seconds: 1 },
    { label: 'steady', rate, seconds: steadyS },
    { label: 'surge', rate: surgeRate, seconds: surgeS },
    { label: 'recovery', rate, seconds: recoveryS },
  ];
  const titles = ['warming up', `1. steady at ${rate} req/s`, `2. surge at ${surgeRate} req/s`, `3. recovery at ${rate} req/s`];
  const live = new Live(downstream, sidecar.url);
  stopper.whenStopping(() => live.close());
  /** Views of the phases that ended, by segment index. */
  const views: (PhaseView | null)[] = [];
  const onEvent = (e: GeneratorEvent): void => {
    if (e.event === 'segment' && e.index !== undefined) {
      views.push(live.phase(titles[e.index]!, segments[e.index]!.seconds));
    } else if (e.event === 'sent') {
      views.push(live.end());
      console.log('  all sent; waiting for the last answers');
    }
  };
  const result = await stopper.step(
    runGenerator({ mode: 'open', origin: sidecar.url, connections, segments, bodies: makeBodies(64), drainS: 15, stamp }, onEvent, stopper.generator.signal),
  );
  live.close();

  const steadyP99 = result.segments[1]!.okLatencyMs?.p99 ?? null;
  for (const i of [1, 2, 3]) {
    const view = views[i + 1];
    const segment = result.segments[i]!;
    if (view === undefined || view === null) continue;
    const [before, after] = await Promise.all(view.scrapes);
    const heading =
      i === 1
        ? `1. steady, ${rate} req/s for ${steadyS} s (open loop), below the downstream's maximum`
        : i === 2
          ? `2. surge, ${surgeRate} req/s offered for ${surgeS} s, past the downstream's maximum`
          : `3. recovery, ${rate} req/s for ${recoveryS} s`;
    const seconds = result.seconds.filter((s) => s.segment === segment.label);
    printPhase({ heading, segment, view, seconds, overhead: overhead(before, after), maxItemsPerSecond: maximum, workers: shape.workers, target: i === 1 });
    if (i === 2) {
      console.log(`  served:           ${f(segment.servedPerSecond, 0)} × 200 per second arrived during the surge (offered ${surgeRate}/s)`);
      console.log(`  generator:        send lag p99 ${f(segment.sendLagMs?.p99)} ms (how late it sent: it shares the CPUs), ${f(result.cpu.percent, 0)}% of a core over the run`);
    }
    if (i === 3) {
      const limit = steadyP99 === null ? null : steadyP99 + TARGET_MS;
      let backAt: number | null = null;
      for (const [second, s] of seconds.entries()) {
        const ok = limit !== null && s.p99 !== null && s.p99 <= limit && s.unfinished + s.errors + s.shed === 0;
        if (ok && backAt === null) backAt = second;
        if (!ok) backAt = null;
      }
      console.log(
        `  back to normal:   ${backAt === null ? 'not within this phase' : `from second ${backAt + 1}`} ` +
          `(p99 ≤ the steady p99 + ${TARGET_MS} ms = ${f(limit)} ms, nothing refused or failed, and stayed there)`,
      );
    }
  }

  if (env.DEMO_EXIT === '1') {
    console.log('\nDEMO_EXIT=1: draining and stopping.');
    await stopper.stop();
  }
  console.log(`\nThe sidecar keeps serving at ${sidecar.url}/process — try:`);
  console.log(`  curl -s -XPOST ${sidecar.url}/process -H 'content-type: application/json' -d '{"key":"a","hello":"world"}'`);
  console.log('Press Ctrl-C to drain and stop.\n');
}
