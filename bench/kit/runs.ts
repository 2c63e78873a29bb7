/**
 * The runs the phases are made of, on the kit: a fresh server under test
 * (traced), a generator process, the server read over the measured window,
 * the server stopped and whatever it logged kept as a problem. An open run
 * follows a schedule (a warm-up, then measured segments); a closed run is
 * autocannon after a warm-up. Variants alternate round by round (A B, B A)
 * so that drift in the machine's load hits all of them alike.
 */
import { loadavg } from 'node:os';
import { runGenerators, type ClosedLoopResult, type GeneratorCpu, type GeneratorEvent } from './generator.ts';
import { startDownstream, startServer, type Child, type Downstream, type DownstreamShape, type Variant } from './launcher.ts';
import type { SecondResult, Segment, SegmentResult } from './open-loop.ts';
import { CLOSED_CONNECTIONS, DOWNSTREAM_HOLD_MS, GENERATORS, makeBodies, OPEN_CONNECTIONS, sidecarEnv, TIME } from './workload.ts';
import { Window, type ServerFigures } from './window.ts';

export interface Context {
  readonly log: (line: string) => void;
  /** What went wrong or looked wrong, for the report. */
  readonly problems: string[];
  readonly downstream: Downstream;
  readonly bodies: readonly string[];
}

export interface RunSpec {
  readonly variant: Variant;
  /** The sidecar's environment; default sidecarEnv(the downstream). */
  readonly env?: Record<string, string>;
  /** Its name in the report (the variant's, by default) and its round. */
  readonly label?: string;
  readonly round: number;
}

/** What every run records: its name, round, the load average at its start, the server over the window, the generator's CPU. */
type Run = { readonly [K in 'round' | 'loadAverage']: number } & { readonly label: string; readonly variant: Variant; readonly server: ServerFigures; readonly generator: GeneratorCpu };

/** The measured segments (the schedule less its warm-up), the schedule by second, the downstream's own p99 over the window (its GET /stats; null: bare, or unread). */
export type OpenRun = Run & { readonly segments: SegmentResult[]; readonly seconds: SecondResult[]; readonly downstreamP99Ms: number | null };

/** autocannon's figures, and the server's CPU µs per 2xx answer. */
export type ClosedRun = Run & { readonly closed: ClosedLoopResult; readonly cpuUsPerRequest: number | null };

/**
 * Runs `run` with a downstream of its own (the unlimited one by default), 64
 * bodies and no problems yet; the downstream is stopped at the end, and its
 * exit before then is a problem (the runs after it are void: the sidecar answers 502).
 */
export async function withDownstream<T>(log: (line: string) => void, run: (ctx: Context) => Promise<T>, shape: DownstreamShape = { latencyMs: DOWNSTREAM_HOLD_MS }): Promise<T> {
  const downstream = await startDownstream(shape);
  const ctx: Context = { log, problems: [], downstream, bodies: makeBodies(64) };
  let stopping = false;
  void downstream.exited.then((exit) => void (stopping || ctx.problems.push(`the simulated downstream exited ${JSON.stringify(exit)} mid-phase: the runs after it are void`)));
  try {
    return await run(ctx);
  } finally {
    stopping = true;
    await downstream.stop();
  }
}

/** A then B in even rounds, B then A in odd ones. */
export function alternate<T>(variants: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...variants] : [...variants].reverse();
}

/** A warm-up (gentle, then at the rate) and a measured window at one rate. */
export function steady(rate: number, seconds = TIME.measure): Segment[] {
  return [
    { label: 'warmup', rate: Math.min(rate, 2000), seconds: TIME.warmup / 2 },
    { label: 'warmup', rate, seconds: TIME.warmup / 2 },
    { label: 'measure', rate, seconds },
  ];
}

/** Server CPU µs per request offered in the measured segment of a steady run. */
export function cpuPerRequest(run: OpenRun): number | null {
  const s = run.segments[0]!;
  return run.server.cpuSeconds === null ? null : (run.server.cpuSeconds * 1e6) / (s.rate * s.seconds);
}

async function withServer<T>(ctx: Context, spec: RunSpec, label: string, run: (child: Child, window: Window) => Promise<T>): Promise<T> {
  const child = await startServer(spec.variant, spec.env ?? sidecarEnv(ctx.downstream.url), { trace: true });
  let early: string | null = null;
  void child.exited.then((exit) => (early ??= JSON.stringify(exit)));
  try {
    return await run(child, new Window(child, spec.variant === 'sidecar'));
  } finally {
    if (early !== null) ctx.problems.push(`${label}: ${spec.variant} had exited before it was stopped ${early}: its figures are void`);
    const exit = await child.stop(20_000);
    for (const line of child.problems().slice(0, 5)) ctx.problems.push(`${label}: the sidecar logged: ${line}`);
    if (exit.code !== 0) ctx.problems.push(`${label}: ${spec.variant} exited ${JSON.stringify(exit)}`);
  }
}

/** A segment's answers that are news (any status but 2xx and 503 with retry-after, errors, unanswered), as a problem line. */
export function noteOutcomes(ctx: Context, label: string, s: SegmentResult): void {
  const parts = [
    ...Object.entries(s.statuses).filter(([code]) => !code.startsWith('2') && code !== '503').map(([code, n]) => `${n} × HTTP ${code}`),
    ...(s.shed > s.shedWithRetryAfter ? [`${s.shed - s.shedWithRetryAfter} × 503 without retry-after`] : []),
    ...Object.entries(s.errors).map(([code, n]) => `${n} × ${code}`),
    ...(s.unfinished > 0 ? [`${s.unfinished} unanswered`] : []),
  ];
  if (parts.length > 0) ctx.problems.push(`${label} (${s.label}): ${parts.join(', ')}`);
}

/**
 * An open-loop run of `segments`; the window opens with the first segment not
 * labelled "warmup" and closes with the last send, or with segment `closeAt`.
 */
export async function openRun(ctx: Context, spec: RunSpec, segments: readonly Segment[], options: { stamp?: boolean; closeAt?: number } = {}): Promise<OpenRun> {
  const label = `${spec.label ?? spec.variant} round ${spec.round + 1}`;
  const loadAverage = loadavg()[0]!;
  return withServer(ctx, spec, label, async (child, window) => {
    const first = segments.findIndex((s) => s.label !== 'warmup');
    let reset: Promise<unknown> = Promise.resolve();
    const onEvent = (e: GeneratorEvent): void => {
      if (e.event === 'segment' && e.index === first - 1) window.warm();
      if (e.event === 'segment' && e.index === first) {
        window.open();
        if (spec.variant !== 'bare') reset = ctx.downstream.stats(true);
      } else if ((e.event === 'segment' && e.index === options.closeAt) || (e.event === 'sent' && options.closeAt === undefined)) window.close();
    };
    const config = { mode: 'open' as const, origin: child.url, connections: OPEN_CONNECTIONS, segments, bodies: ctx.bodies, drainS: TIME.drain, stamp: options.stamp };
    const result = await runGenerators(GENERATORS, config, onEvent);
    await reset;
    const stats = spec.variant === 'bare' ? null : await ctx.downstream.stats();
    const measured = result.segments.slice(first);
    for (const s of measured) noteOutcomes(ctx, label, s);
    const server = await window.figures();
    const summary = measured.map((m) => `${m.label} p99 ${m.latencyMs?.p99.toFixed(1)} ms, ${m.ok}/${m.sent} 2xx, ${m.shed} × 503`).join('; ');
    ctx.log(`  ${label}: ${summary}, server ${server.cpuSeconds?.toFixed(2)} s CPU, generator ${result.cpu.percent.toFixed(0)}%`);
    return { label: spec.label ?? spec.variant, variant: spec.variant, round: spec.round, loadAverage, segments: measured, seconds: result.seconds, server, generator: result.cpu, downstreamP99Ms: stats?.p99 ?? null };
  });
}

/** Closed loop, autocannon, CLOSED_CONNECTIONS after a warm-up with 200. */
export async function closedRun(ctx: Context, spec: RunSpec): Promise<ClosedRun> {
  const label = `closed ${spec.label ?? spec.variant} round ${spec.round + 1}`;
  const loadAverage = loadavg()[0]!;
  return withServer(ctx, spec, label, async (child, window) => {
    const onEvent = (e: GeneratorEvent): void => void (e.event === 'warm' ? window.warm() : e.event === 'start' ? window.open() : e.event === 'sent' ? window.close() : null);
    const config = { mode: 'closed' as const, origin: child.url, connections: CLOSED_CONNECTIONS, seconds: TIME.closed, warmupSeconds: TIME.closedWarmup, warmupConnections: 200, bodies: ctx.bodies.slice(0, 16) };
    const { closed, cpu } = await runGenerators(GENERATORS, config, onEvent);
    if (closed.errors > 0) ctx.problems.push(`${label}: ${closed.errors} connection errors (${closed.timeouts} timeouts)`);
    const server = await window.figures();
    const cpuUsPerRequest = server.cpuSeconds === null || closed.ok <= 0 ? null : (server.cpuSeconds * 1e6) / closed.ok;
    ctx.log(`  ${label}: ${closed.okPerSecond.toFixed(0)} 2xx/s, ${closed.statusCodes['503'] ?? 0} × 503, p99 ${closed.latencyMs.p99} ms, peak RSS ${((server.peakRssBytes ?? 0) / 2 ** 20).toFixed(0)} MiB`);
    return { label: spec.label ?? spec.variant, variant: spec.variant, round: spec.round, loadAverage, closed, server, cpuUsPerRequest, generator: cpu };
  });
}
