/**
 * One load-generator process for bench/device.ts, where one generator thread
 * cannot reach the rates a many-core machine serves. Prints one JSON line.
 *
 *   MODE=closed URL=... CONNECTIONS=n SECONDS=s           autocannon, closed loop
 *   MODE=open ORIGIN=... RATE=r WARMUP=s SECONDS=s        constant-rate open loop
 */
import autocannon from 'autocannon';
import { OpenLoop } from './open-loop.ts';

const env = process.env;
const bodies = Array.from({ length: 64 }, (_, i) => Buffer.from(JSON.stringify({ key: `user-${i}`, id: i, payload: 'x'.repeat(40) })));

if (env.MODE === 'closed') {
  const result = await autocannon({
    url: env.URL!,
    connections: Number(env.CONNECTIONS),
    duration: Number(env.SECONDS),
    timeout: 30,
    requests: bodies.slice(0, 16).map((body) => ({ method: 'POST', path: '/process', headers: { 'content-type': 'application/json' }, body })),
  });
  process.stdout.write(`${JSON.stringify({ ok: result['2xx'], non2xx: result.non2xx, errors: result.errors, seconds: result.duration })}\n`);
} else {
  const loop = new OpenLoop({
    origin: env.ORIGIN!,
    path: '/process',
    rate: Number(env.RATE),
    warmupMs: Number(env.WARMUP) * 1000,
    durationMs: Number(env.SECONDS) * 1000,
    bodies,
    connections: Number(env.CONNECTIONS ?? 4000),
    drainTimeoutMs: 5000,
  });
  await loop.start();
  const result = await loop.finish();
  process.stdout.write(
    `${JSON.stringify({ ok: result.ok, measured: result.measuredRequests, unfinished: result.unfinished, achieved: result.achievedRate, latency: result.latencyMs, lag: result.sendLagMs })}\n`,
  );
}
process.exit(0);
