/** bench/results/summary.md: the figures as tables, ratios first. */
import type { OpenLoopResult } from './open-loop.ts';
import type { Percentiles } from './stats.ts';
import type { BatchFigures, BenchResults, OverheadFigures, ProcFigures, QuantileMs, ThroughputSide, WindowFigures } from './types.ts';

const NA = 'n/a';

export function num(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return NA;
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function mib(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? NA : `${num(bytes / 2 ** 20, 1)} MiB`;
}

function q(value: QuantileMs | null | undefined, digits = 2): string {
  if (value === null || value === undefined) return NA;
  return `${value.overflow ? '> ' : ''}${num(value.ms, digits)}`;
}

function lat(p: Percentiles | null | undefined): string {
  return p === null || p === undefined ? `${NA} / ${NA} / ${NA}` : `${num(p.p50, 1)} / ${num(p.p99, 1)} / ${num(p.p999, 1)}`;
}

function overhead(o: OverheadFigures | null): string {
  return o === null ? `${NA} / ${NA} / ${NA}` : `${q(o.p50)} / ${q(o.p99)} / ${q(o.p999)}`;
}

function verdict(pass: boolean | null): string {
  return pass === null ? 'n/a' : pass ? '**PASS**' : '**FAIL**';
}

function cpu(p: ProcFigures | null | undefined): string {
  return p === null || p === undefined || p.cpuSeconds === null ? NA : `${num(p.cpuSeconds, 1)} s (${num(p.cpuPercent, 0)}%)`;
}

function source(b: BatchFigures | null): string {
  if (b === null || b.source === null) return '';
  return b.source === 'metrics' ? '' : ' ¹';
}

function failures(statuses: Record<string, number>, errors: Record<string, number>, unfinished: number): string {
  const bad = Object.entries(statuses).filter(([code]) => !code.startsWith('2')).reduce((s, [, n]) => s + n, 0);
  const err = Object.values(errors).reduce((s, n) => s + n, 0);
  return num(bad + err + unfinished);
}

/** CPU microseconds per request offered in the measured window. */
function perRequest(p: ProcFigures | null | undefined, open: OpenLoopResult): string {
  const requests = open.offeredRate * open.windowSeconds;
  return p === null || p === undefined || p.cpuSeconds === null || requests <= 0 ? NA : num((p.cpuSeconds * 1e6) / requests);
}

/** Did the target keep up with the offered rate, and did the generator send on time? */
function keptUp(open: OpenLoopResult): string {
  const share = open.offeredRate > 0 ? open.achievedRate / open.offeredRate : 0;
  const lag = open.sendLagMs?.p99 ?? 0;
  const issues: string[] = [];
  if (share < 0.95) issues.push(`served ${num(100 * share)}%`);
  if (open.unfinished > 0) issues.push(`${num(open.unfinished)} unanswered`);
  // The generator shares the CPUs: some lag is machine noise (and counted in the latency anyway).
  if (lag > 50) issues.push(`generator late, lag p99 ${num(lag)} ms`);
  return issues.length === 0 ? 'yes' : `**no**: ${issues.join(', ')}`;
}

/** Server CPU seconds per answered request in a closed-loop run. */
function cpuPerRequest(side: ThroughputSide): number {
  const cpuSeconds = side.processes[side.kind === 'bare' ? 'bare' : 'sidecar']?.cpuSeconds ?? Number.NaN;
  return side.closed.ok > 0 ? cpuSeconds / side.closed.ok : Number.NaN;
}

export function renderSummary(r: BenchResults): string {
  const t = r.throughput;
  const l = r.latency;
  const m = r.memory;
  const lines: string[] = [];
  const push = (...more: string[]): void => void lines.push(...more);
  const anyClientBatch =
    [t.sidecar.batching, l.sidecar.batching, ...r.efficiency.map((s) => s.batching), ...r.shards.configs.map((s) => s.batching)].some(
      (b) => b !== null && b.source === 'x-batch-id',
    );

  push(
    '# Benchmark summary',
    '',
    `${r.meta.date} · commit ${r.meta.commit ?? NA} · Node ${r.meta.node} · ${r.meta.cpus} × ${r.meta.cpuModel} · ` +
      `load average ${r.meta.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} at start · ${num(r.meta.wallSeconds)} s` +
      (r.meta.quick ? ' · **BENCH_QUICK: ~2 s phases, a smoke test, not a measurement**' : ''),
    '',
    'All processes on this machine, on 127.0.0.1: load generator (this process), sidecar, simulated downstream ' +
      `(${r.meta.downstreamLatencyMs} ms, no jitter) and the bare Fastify baseline are separate OS processes sharing the CPUs. ` +
      'CPU and peak RSS per process come from /proc (CPU % of one core over the measured window).',
    '',
    '| headline | result | target | |',
    '|---|---|---|---|',
    `| throughput sidecar / bare | ${num(t.ratio, 2)}× | ≥ ${t.target}× | ${verdict(t.pass)} |`,
    `| server CPU per request, bare / sidecar | ${num(cpuPerRequest(t.bare) / cpuPerRequest(t.sidecar), 2)}× | (generator-independent view of the same) | |`,
    `| throughput tracing on / off | ${num(t.tracingRatio, 2)}× | ≥ ${t.tracingTarget}× | ${verdict(t.tracingPass)} |`,
    `| overhead p99 at ${num(l.rate)} req/s (80% of max) | ${q(l.sidecar.overhead?.p99)} ms | ≤ ${l.targetMs} ms | ${verdict(l.pass)} |`,
    `| downstream calls per 1,000 requests at ${num(r.efficiency.at(-1)?.offeredRate)} req/s | ${num(r.efficiency.at(-1)?.batching.callsPer1000, 1)} | fewer is better | |`,
    `| sidecar RSS with ${num(m.requests)} requests waiting | ${mib(m.waitingRssBytes)} | reported | |`,
    '',
    '![chart](chart.svg)',
    '',
  );

  const sc = t.sidecar.closed;
  const bc = t.bare.closed;
  const ratio = (a: number, b: number): string => (b > 0 ? `${num(a / b, 2)}×` : NA);
  push(
    `## 1. Throughput (closed loop, autocannon, ${r.meta.closedLoopConnections} connections, ${num(sc.durationSeconds)} s each)`,
    '',
    `The sidecar ran ${t.tracingRounds.length} rounds of tracing off and on, alternating which went first; its column is the ` +
      'median tracing-off run, and tracing on / off is the ratio of the two medians.',
    '',
    '| | sidecar | bare Fastify | sidecar / bare |',
    '|---|---|---|---|',
    `| req/s (2xx) | ${num(sc.okPerSecond)} | ${num(bc.okPerSecond)} | **${ratio(sc.okPerSecond, bc.okPerSecond)}** |`,
    `| req/s with tracing on (batch spans, 1% of request spans, OTLP) | ${num(t.traced.closed.okPerSecond)} (${num(t.otlpExports)} exports) | — | tracing on / off **${num(t.tracingRatio, 2)}×** |`,
    `| tracing off / on by round (req/s) | ${t.tracingRounds.map((round) => `${num(round.off.closed.okPerSecond)} / ${num(round.on.closed.okPerSecond)} (${num(round.ratio, 2)}×)`).join(', ')} | — | medians above |`,
    `| errors (connection / timeouts / non-2xx) | ${num(sc.errors)} / ${num(sc.timeouts)} / ${num(sc.non2xx)} | ${num(bc.errors)} / ${num(bc.timeouts)} / ${num(bc.non2xx)} | |`,
    `| mean batch size | ${num(t.sidecar.batching?.meanBatchSize, 1)}${source(t.sidecar.batching)} | — | |`,
    `| closed-loop latency p50 / p99 ms (informational) | ${num(sc.latencyMs.p50, 0)} / ${num(sc.latencyMs.p99, 0)} | ${num(bc.latencyMs.p50, 0)} / ${num(bc.latencyMs.p99, 0)} | |`,
    `| CPU: server process | ${cpu(t.sidecar.processes.sidecar)} | ${cpu(t.bare.processes.bare)} | ${ratio(t.sidecar.processes.sidecar?.cpuSeconds ?? 0, t.bare.processes.bare?.cpuSeconds ?? 0)} |`,
    `| CPU: simulated downstream | ${cpu(t.sidecar.processes.downstream)} | — | |`,
    `| CPU: load generator | ${cpu(t.sidecar.processes.bench)} | ${cpu(t.bare.processes.bench)} | |`,
    `| CPU per request, load generator | ${num(((t.sidecar.processes.bench?.cpuSeconds ?? Number.NaN) * 1e6) / sc.requests, 0)} µs | ${num(((t.bare.processes.bench?.cpuSeconds ?? Number.NaN) * 1e6) / bc.requests, 0)} µs | |`,
    `| CPU per 1,000 requests, server | ${num(((t.sidecar.processes.sidecar?.cpuSeconds ?? Number.NaN) * 1e6) / sc.ok, 0)} ms | ${num(((t.bare.processes.bare?.cpuSeconds ?? Number.NaN) * 1e6) / bc.ok, 0)} ms | |`,
    `| peak RSS, server process | ${mib(t.sidecar.processes.sidecar?.peakRssBytes)} | ${mib(t.bare.processes.bare?.peakRssBytes)} | |`,
    `| peak RSS, simulated downstream | ${mib(t.sidecar.processes.downstream?.peakRssBytes)} | — | |`,
    '',
    'The bare route parses the JSON item and answers `{"echo": item}` at once; the sidecar answers the same JSON after a ' +
      `${r.meta.downstreamLatencyMs} ms downstream round trip, so it needs more connections in flight for the same rate (Little's law).`,
    '',
  );
  for (const side of [t.sidecar, t.bare]) {
    const gen = side.processes.bench?.cpuPercent ?? 0;
    if (gen >= 90) {
      push(
        `Note: the load generator used ${num(gen)}% of a core against the ${side.kind === 'bare' ? 'bare route' : 'sidecar'}: ` +
          'that figure is (partly) generator-bound, a lower bound of what the server could do' +
          (side.kind === 'bare' ? ', so the ratio flatters the sidecar.' : '.'),
        '',
      );
    }
  }

  push(
    `## 2. Added latency (open loop at ${num(l.rate)} req/s, 80% of the sidecar's maximum; BATCH_MAX_WAIT_MS=${l.batchMaxWaitMs})`,
    '',
    'Constant-rate generator (bench/open-loop.ts); latency counted from each request\'s intended send time, so queueing ' +
      'anywhere (server, network, generator) is not hidden. autocannon\'s `overallRate` was checked and not used: it gives each ' +
      'connection a quota per second (`reqsMadeThisSecond` in autocannon/lib/httpClient.js, reset by a 1 s interval) that is sent ' +
      'as fast as possible, i.e. bursts at the start of every second, measured closed-loop.',
    '',
    '| | sidecar | bare Fastify (noise floor) |',
    '|---|---|---|',
    `| achieved req/s (2xx in window) | ${num(l.sidecar.open.achievedRate)} | ${num(l.bare.open.achievedRate)} |`,
    `| kept up with the offered rate? | ${keptUp(l.sidecar.open)} | ${keptUp(l.bare.open)} |`,
    `| end-to-end p50 / p99 / p99.9 ms | ${lat(l.sidecar.open.latencyMs)} | ${lat(l.bare.open.latencyMs)} |`,
    `| end-to-end max ms | ${num(l.sidecar.open.latencyMs?.max, 1)} | ${num(l.bare.open.latencyMs?.max, 1)} |`,
    `| end-to-end p99 minus downstream ${r.meta.downstreamLatencyMs} ms | ${num((l.sidecar.open.latencyMs?.p99 ?? Number.NaN) - r.meta.downstreamLatencyMs, 1)} | — |`,
    `| **sidecar_overhead_seconds p50 / p99 / p99.9 ms** | **${overhead(l.sidecar.overhead)}** | — |`,
    `| overhead p99 vs target ${l.targetMs} ms | ${verdict(l.pass)} | |`,
    `| failed (non-2xx, errors, unanswered) | ${failures(l.sidecar.open.statuses, l.sidecar.open.errors, l.sidecar.open.unfinished)} | ${failures(l.bare.open.statuses, l.bare.open.errors, l.bare.open.unfinished)} |`,
    `| CPU per request: server / generator µs | ${perRequest(l.sidecar.processes.sidecar, l.sidecar.open)} / ${perRequest(l.sidecar.processes.bench, l.sidecar.open)} | ${perRequest(l.bare.processes.bare, l.bare.open)} / ${perRequest(l.bare.processes.bench, l.bare.open)} |`,
    `| generator send lag p99 / max ms | ${num(l.sidecar.open.sendLagMs?.p99, 1)} / ${num(l.sidecar.open.sendLagMs?.max, 1)} | ${num(l.bare.open.sendLagMs?.p99, 1)} / ${num(l.bare.open.sendLagMs?.max, 1)} |`,
    `| CPU: server / downstream / generator | ${cpu(l.sidecar.processes.sidecar)} / ${cpu(l.sidecar.processes.downstream)} / ${cpu(l.sidecar.processes.bench)} | ${cpu(l.bare.processes.bare)} / — / ${cpu(l.bare.processes.bench)} |`,
    '',
    'Overhead percentiles are interpolated from the cumulative buckets of `sidecar_overhead_seconds` (scrape after minus scrape ' +
      'before the window); their precision is the bucket width. n/a: the sidecar does not expose the metric yet.',
    '',
  );

  push(
    '## 3. Batching efficiency (open loop, one sidecar, SHARD_COUNT=4, BATCH_MAX_SIZE=100, BATCH_MAX_WAIT_MS=10)',
    '',
    '| offered req/s | achieved req/s | kept up? | mean batch size | downstream calls / 1,000 req | batches by trigger | e2e p50 / p99 ms | overhead p99 ms | sidecar CPU | failed |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.efficiency.map((s) => {
      const triggers = s.batching.triggers === null ? NA : Object.entries(s.batching.triggers).map(([k, v]) => `${k} ${num(v)}`).join(', ');
      const offered = s.requestedRate !== s.offeredRate ? `${num(s.offeredRate)} (asked ${num(s.requestedRate)})` : num(s.offeredRate);
      return (
        `| ${offered} | ${num(s.open.achievedRate)} | ${keptUp(s.open)} | ${num(s.batching.meanBatchSize, 1)}${source(s.batching)} | ` +
        `**${num(s.batching.callsPer1000, 1)}** | ${triggers} | ${num(s.open.latencyMs?.p50, 1)} / ${num(s.open.latencyMs?.p99, 1)} | ` +
        `${q(s.overhead?.p99)} | ${cpu(s.processes.sidecar)} | ${failures(s.open.statuses, s.open.errors, s.open.unfinished)} |`
      );
    }),
    '',
    'Without batching the downstream would get 1,000 calls per 1,000 requests. Rates above 90% of the closed-loop maximum are capped to it.',
    '',
  );

  const waiting = m.queueDepth === null ? '' : ` (metrics: ${num(m.queueDepth)} queued, ${num(m.inflightBatches)} batches in flight)`;
  push(
    `## 4. Memory: ${num(m.requests)} requests waiting on a ${num(m.downstreamLatencyMs)} ms downstream`,
    '',
    `Sidecar with ${Object.entries(m.sidecarEnv).map(([k, v]) => `${k}=${v}`).join(' ')}: ` +
      `at most ${num(Number(m.sidecarEnv.SHARD_COUNT) * Number(m.sidecarEnv.MAX_INFLIGHT_BATCHES) * Number(m.sidecarEnv.BATCH_MAX_SIZE))} ` +
      'items are in downstream calls, the rest wait in the shard queues.',
    '',
    '| | value |',
    '|---|---|',
    `| sidecar RSS idle | ${mib(m.idleRssBytes)} |`,
    `| **sidecar RSS with ${num(m.requests)} waiting** | **${mib(m.waitingRssBytes)}**${waiting} |`,
    `| growth per waiting request | ${num(m.perRequestBytes === null ? null : m.perRequestBytes / 1024, 1)} KiB |`,
    `| sidecar peak RSS (VmHWM) | ${mib(m.peakRssBytes)} |`,
    `| requests written / answered when read | ${num(m.written)} / ${num(m.answeredBeforeStop)} (read after ${num(m.settleMs)} ms) |`,
    `| then SIGTERM (SHUTDOWN_TIMEOUT_MS=${m.sidecarEnv.SHUTDOWN_TIMEOUT_MS}): exit code, time | ${m.stop.exitCode ?? NA}, ${num(m.stop.ms)} ms |`,
    `| answers after SIGTERM | ${Object.entries(m.stop.statuses).map(([k, v]) => `${num(v)} × ${k}`).join(', ') || 'none'}` +
      `${Object.entries(m.stop.errors).map(([k, v]) => `, ${num(v)} × ${k}`).join('')}${m.stop.unfinished > 0 ? `, ${num(m.stop.unfinished)} unanswered` : ''} |`,
    '',
    'The drain cannot finish 10,000 items at one 5 s batch per shard within the shutdown timeout, so SPEC §5.5 applies: ' +
      'the rest get 503 and the process exits 1. Every request should get an answer.',
    '',
  );

  push(
    `## 5. Shards (open loop at ${num(r.shards.rate)} req/s)`,
    '',
    '| SHARD_COUNT | achieved req/s | kept up? | mean batch size | calls / 1,000 req | e2e p50 / p99 ms | overhead p50 / p99 ms | sidecar CPU | peak RSS | failed |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.shards.configs.map(
      (s) =>
        `| ${s.shardCount} | ${num(s.open.achievedRate)} | ${keptUp(s.open)} | ${num(s.batching.meanBatchSize, 1)}${source(s.batching)} | ${num(s.batching.callsPer1000, 1)} | ` +
        `${num(s.open.latencyMs?.p50, 1)} / ${num(s.open.latencyMs?.p99, 1)} | ${q(s.overhead?.p50)} / ${q(s.overhead?.p99)} | ` +
        `${cpu(s.processes.sidecar)} | ${mib(s.processes.sidecar?.peakRssBytes)} | ${failures(s.open.statuses, s.open.errors, s.open.unfinished)} |`,
    ),
    '',
    'More shards split the same traffic into more, smaller batches (more downstream calls) when batches close on the time trigger.',
    '',
  );

  if (r.window !== undefined) push(renderWindow(r.window), '');

  if (anyClientBatch) {
    push('¹ counted from the distinct `x-batch-id` headers the client saw: the sidecar has no `sidecar_batch_size` metric yet.', '');
  }
  push('## Problems seen', '');
  if (r.problems.length === 0) push('None: no errors, no unexpected status codes, no warnings in the sidecar logs, clean exits.');
  else push(...r.problems.map((p) => `- ${p}`));
  if (r.notes.length > 0) push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`));
  push('', `Raw figures: bench/results/latest.json. Durations (s): ${Object.entries(r.meta.durationsSeconds).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
  return lines.join('\n');
}

function signed(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return NA;
  return `${n > 0 ? '+' : ''}${num(n, digits)}`;
}

/** Section 6: fixed vs adaptive batch window (ADR 0016). */
export function renderWindow(w: WindowFigures): string {
  const gainPass = w.latencyGainAt1000Ms === null ? null : w.latencyGainAt1000Ms >= 5;
  const callsPass = w.bottleneckExtraCallsPer1000 === null ? null : w.bottleneckExtraCallsPer1000 <= 0;
  const lines = [
    '## 6. Batch window: fixed vs adaptive (open loop, SHARD_COUNT=4, BATCH_MAX_SIZE=100, BATCH_MAX_WAIT_MS=10, BATCH_MIN_WAIT_MS=1)',
    '',
    'Both modes at each rate in alternating rounds, each mode its own sidecar; the round with the median client p99 is shown. Added p99 = client p99 − the downstream latency − ' +
      'the bare route\'s client p99 at the same rate (SPEC §10). Window: the mean over the shards of ' +
      '`sidecar_batch_window_seconds` read just after the last request was sent.',
    '',
    '| scenario | req/s | added p99 ms, fixed / adaptive (Δ) | e2e p50 / p90 ms, fixed — adaptive | calls / 1,000 req (all rounds), fixed / adaptive | window ms at the last send | overhead p50 / p99 ms, fixed — adaptive | sidecar CPU | kept up? fixed / adaptive |',
    '|---|---|---|---|---|---|---|---|---|',
    ...w.steps.map((step) => {
      const f = step.fixed;
      const a = step.adaptive;
      const delta = f.addedP99Ms !== null && a.addedP99Ms !== null ? a.addedP99Ms - f.addedP99Ms : null;
      const scenario = `${step.scenario} (${num(step.downstreamLatencyMs)} ms, MAX_INFLIGHT_BATCHES=${step.maxInflightBatches})`;
      return (
        `| ${scenario} | ${num(step.rate)} | ${num(f.addedP99Ms, 1)} / ${num(a.addedP99Ms, 1)} (**${signed(delta)}**) | ` +
        `${num(f.open.latencyMs?.p50, 1)} / ${num(f.open.latencyMs?.p90, 1)} — ${num(a.open.latencyMs?.p50, 1)} / ${num(a.open.latencyMs?.p90, 1)} | ` +
        `${num(f.pooledCallsPer1000, 1)} / ${num(a.pooledCallsPer1000, 1)} | ${num(f.windowMs, 1)} / ${num(a.windowMs, 1)} | ` +
        `${q(f.overhead?.p50, 1)} / ${q(f.overhead?.p99, 1)} — ${q(a.overhead?.p50, 1)} / ${q(a.overhead?.p99, 1)} | ${cpu(f.processes.sidecar)} / ${cpu(a.processes.sidecar)} | ${keptUp(f.open)} / ${keptUp(a.open)} |`
      );
    }),
    '',
    `Client p99 of each round (ms), fixed / adaptive: ${w.steps
      .map((step) => `${step.scenario} ${num(step.rate)}: ${step.fixed.p99RoundsMs.map((v) => num(v, 0)).join(', ')} / ${step.adaptive.p99RoundsMs.map((v) => num(v, 0)).join(', ')}`)
      .join('; ')}.`,
    '',
    `Calls per 1,000 requests of each round, fixed / adaptive: ${w.steps
      .map((step) => `${step.scenario} ${num(step.rate)}: ${step.fixed.callsPer1000Rounds.map((v) => num(v, 1)).join(', ')} / ${step.adaptive.callsPer1000Rounds.map((v) => num(v, 1)).join(', ')}`)
      .join('; ')}.`,
    '',
    '| goal | result | |',
    '|---|---|---|',
    `| added p99 at 1,000 req/s (room), fixed − adaptive | ${signed(w.latencyGainAt1000Ms)} ms | ≥ 5 ms ${verdict(gainPass)} |`,
    `| calls / 1,000 req at the bottleneck (all rounds), adaptive − fixed | ${signed(w.bottleneckExtraCallsPer1000)} | ≤ 0 ${verdict(callsPass)} |`,
  ];
  return lines.join('\n');
}
