/**
 * The bench's one process launcher. Every process under test is its own OS
 * process on 127.0.0.1 and an ephemeral port, so its CPU and RSS can be read
 * from /proc: the simulated downstream (sim/legacy-downstream.ts), the bare
 * Fastify route (bench/bare-server.ts), the floor (bench/floor-server.ts) and
 * the sidecar (`node src/main.ts`, through sim/sidecar-process.ts; or another
 * tree's, for a base commit). A traced server runs under `node --trace-gc
 * --import bench/kit/probe-preload.ts`, its GC and event-loop lines read by
 * bench/kit/trace.ts. Every child is killed when the bench exits, however it
 * exits. worktreeAt() checks out an older commit, to run its sidecar beside this one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { DownstreamStats } from '../../sim/legacy-downstream.ts';
import { MAIN, startSidecar, type Exit } from '../../sim/sidecar-process.ts';
import { EventLoopProbe, GcRecorder } from './trace.ts';

const path = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const FILES = { downstream: path('../../sim/legacy-downstream.ts'), bare: path('../bare-server.ts'), floor: path('../floor-server.ts'), probe: path('./probe-preload.ts') };

/** The bare route (no batching), the floor (the least batching route), the contract floor (the floor with FLOOR_CONTRACT=1), the sidecar. */
export type Variant = 'bare' | 'floor' | 'contract' | 'sidecar';

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** http://127.0.0.1:PORT (the downstream's: its batch URL). */
  readonly url: string;
  readonly exited: Promise<Exit>;
  /** GC pauses and the event-loop probe, for a traced server; null otherwise. */
  readonly gc: GcRecorder | null;
  readonly probe: EventLoopProbe | null;
  /** Its log lines at warn level or worse, distinct (the sidecar's; empty for the others). */
  problems(): string[];
  /** SIGTERM, then its exit (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<Exit>;
}

const live = new Set<ChildProcess>();

/** SIGKILL to every child still running (synchronous: safe in an 'exit' handler). */
export function killAll(): void {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

function stopper(child: ChildProcess, exited: Promise<Exit>) {
  return async (timeoutMs = 10_000): Promise<Exit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const exit = await exited;
    clearTimeout(timer);
    return exit;
  };
}

function traced(trace: boolean): { gc: GcRecorder | null; probe: EventLoopProbe | null; nodeArgs: string[]; onLine: (line: string) => boolean } {
  if (!trace) return { gc: null, probe: null, nodeArgs: [], onLine: () => false };
  const gc = new GcRecorder();
  const probe = new EventLoopProbe();
  return { gc, probe, nodeArgs: ['--trace-gc', '--import', FILES.probe], onLine: (line) => gc.line(line) || probe.line(line) };
}

/** A bench script (the downstream, the bare route, the floor) started with this Node binary; ready when `ready` finds its URL in a line. */
async function spawnReady(name: string, file: string, env: Record<string, string>, ready: (line: string) => string | null, trace = false): Promise<Child> {
  const t = traced(trace);
  const child = track(spawn(process.execPath, [...t.nodeArgs, file], { env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => void (stderr.length < 10_000 && (stderr += chunk.toString())));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const found = t.onLine(line) ? null : ready(line);
      if (found !== null) resolve(found);
    });
    void exited.then((exit) => reject(new Error(`${name} exited before ready: ${JSON.stringify(exit)} ${stderr}`)));
    setTimeout(() => reject(new Error(`${name} not ready after 20 s: ${stderr}`)), 20_000).unref();
  });
  return { name, pid: child.pid!, url, exited, gc: t.gc, probe: t.probe, problems: () => [], stop: stopper(child, exited) };
}

/** The origin from a baseline server's `{"msg":"<name> ready","port":N}` line. */
function readyLine(name: string): (line: string) => string | null {
  return (line) => {
    const match = new RegExp(`^\\{"msg":"${name} ready","port":(\\d+)\\}$`).exec(line);
    return match === null ? null : `http://127.0.0.1:${match[1]}`;
  };
}

/** The sidecar with `env` on its defaults; `main` another tree's src/main.ts (a base commit's worktree). */
async function startSidecarChild(env: Record<string, string>, trace: boolean, main = MAIN): Promise<Child> {
  const t = traced(trace);
  const sidecar = await startSidecar(env, ['node', ...t.nodeArgs, main], { onLine: t.onLine });
  track(sidecar.child);
  const problems = (): string[] => {
    const lines = sidecar.logs
      .filter((entry) => (typeof entry.level === 'number' && entry.level >= 40) || 'raw' in entry)
      .map((entry) => {
        const err = entry.err as { message?: string; code?: string } | undefined;
        return `${String(entry.msg ?? entry.raw ?? '')}${err ? ` (${err.code ?? ''} ${err.message ?? ''})` : ''}`.trim();
      });
    return [...new Set(lines)];
  };
  return { name: 'sidecar', pid: sidecar.child.pid!, url: sidecar.url, exited: sidecar.exited, gc: t.gc, probe: t.probe, problems, stop: (ms) => sidecar.stop(ms) };
}

/**
 * A server under test, traced (--trace-gc, the event-loop probe) or not; `main`: the sidecar
 * from another tree. The floors take the sidecar's batching knobs (DOWNSTREAM_URL, SHARD_COUNT,
 * BATCH_MAX_WAIT_MS, BATCH_MAX_SIZE); the bare route none.
 */
export function startServer(variant: Variant, env: Record<string, string>, options: { trace?: boolean; main?: string } = {}): Promise<Child> {
  const trace = options.trace ?? false;
  if (variant === 'sidecar') return startSidecarChild(env, trace, options.main);
  if (variant === 'bare') return spawnReady('bare', FILES.bare, {}, readyLine('bare'), trace);
  const knobs = Object.fromEntries(['DOWNSTREAM_URL', 'SHARD_COUNT', 'BATCH_MAX_WAIT_MS', 'BATCH_MAX_SIZE'].filter((k) => env[k] !== undefined).map((k) => [k, env[k]!]));
  if (variant === 'contract') return spawnReady('contract floor', FILES.floor, { ...knobs, FLOOR_CONTRACT: '1' }, readyLine('floor'), trace);
  return spawnReady('floor', FILES.floor, knobs, readyLine('floor'), trace);
}

/** The simulated downstream's shape: fixed latency, no jitter, no failures; a pool of workers for a finite capacity. */
export interface DownstreamShape {
  readonly latencyMs: number;
  /** Calls served at once (0 or absent: no limit), each costing latencyMs + perItemMs × items; queueLimit 0: an unbounded FIFO. */
  readonly workers?: number;
  readonly perItemMs?: number;
  readonly queueLimit?: number;
}

export interface Downstream extends Child {
  /** GET /stats (?reset=1 resets them after answering); null when it cannot be read. */
  stats(reset?: boolean): Promise<DownstreamStats | null>;
  /** POST /control: its options changed at once (e.g. {"workers": 2}); true when it answered 2xx. */
  control(options: Record<string, number>): Promise<boolean>;
}

export async function startDownstream(shape: DownstreamShape): Promise<Downstream> {
  const env = { LATENCY_MS: String(shape.latencyMs), JITTER_MS: '0', FAILURE_RATE: '0', WORKERS: String(shape.workers ?? 0), PER_ITEM_MS: String(shape.perItemMs ?? 0), QUEUE_LIMIT: String(shape.queueLimit ?? 0) };
  const child = await spawnReady(`downstream ${JSON.stringify(shape)}`, FILES.downstream, env, (line) => /listening on (\S+)/.exec(line)?.[1] ?? null);
  const origin = new URL(child.url).origin;
  const call = async <T>(pathname: string, options: Parameters<typeof request>[1] = {}): Promise<T | null> => {
    try {
      const { statusCode, body } = await request(`${origin}${pathname}`, { headersTimeout: 3000, bodyTimeout: 3000, ...options });
      if (statusCode < 200 || statusCode > 299) return (await body.dump(), null);
      return (await body.json()) as T;
    } catch {
      return null;
    }
  };
  const post = { method: 'POST' as const, headers: { 'content-type': 'application/json' } };
  return {
    ...child,
    stats: (reset = false) => call<DownstreamStats>(`/stats${reset ? '?reset=1' : ''}`),
    control: async (options) => (await call<object>('/control', { ...post, body: JSON.stringify(options) })) !== null,
  };
}

/** A temporary git worktree at `ref` with this tree's node_modules linked in: its src/main.ts, its short commit, and remove(). */
export function worktreeAt(ref: string): { readonly main: string; readonly commit: string; remove(): void } {
  const root = path('../..');
  const dir = mkdtempSync(join(tmpdir(), 'sidecar-base-'));
  execFileSync('git', ['worktree', 'add', '--detach', '--force', dir, ref], { cwd: root, stdio: 'ignore' });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).trim();
  const remove = (): void => {
    try {
      execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: root, stdio: 'ignore' });
    } catch {
      // `git worktree prune` forgets it
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { main: join(dir, 'src/main.ts'), commit, remove };
}
