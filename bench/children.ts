/**
 * The processes under test, each its own OS process so its CPU time and RSS
 * can be read from /proc: the simulated downstream (`node
 * sim/legacy-downstream.ts`), the bare Fastify baseline (bench/bare-server.ts),
 * the least batching route (bench/floor-server.ts) and the sidecar
 * (sim/sidecar-process.ts, i.e. `node src/main.ts`). Every child is
 * registered here and killed when the benchmark exits, however it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MAIN, startSidecar, type Exit, type SidecarProcess } from '../sim/sidecar-process.ts';

const DOWNSTREAM = fileURLToPath(new URL('../sim/legacy-downstream.ts', import.meta.url));
const BARE = fileURLToPath(new URL('./bare-server.ts', import.meta.url));
const FLOOR = fileURLToPath(new URL('./floor-server.ts', import.meta.url));

const live = new Set<ChildProcess>();

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** SIGKILL to every child still running (synchronous: safe in an 'exit' handler). */
export function killAll(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Base URL: http://127.0.0.1:PORT (plus /batch for the downstream). */
  readonly url: string;
  readonly exited: Promise<Exit>;
  stop(timeoutMs?: number): Promise<Exit>;
}

/** Optional extras for a child under test (bench/hot-path.ts); the defaults change nothing. */
export interface ChildOptions {
  /** Node flags before the script, e.g. ['--trace-gc']. */
  readonly nodeArgs?: readonly string[];
  /** Sees every stdout line first; a line it answers true for is not a log line (e.g. --trace-gc output). */
  readonly onLine?: (line: string) => boolean;
}

async function spawnReady(
  name: string,
  file: string,
  env: Record<string, string>,
  ready: (line: string) => string | null,
  options: ChildOptions = {},
): Promise<Child> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), file], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 10_000) stderr += chunk.toString();
  });
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (options.onLine?.(line) === true) return;
      const found = ready(line);
      if (found !== null) resolve(found);
    });
    void exited.then((exit) => reject(new Error(`${name} exited before ready: ${JSON.stringify(exit)} ${stderr}`)));
    setTimeout(() => reject(new Error(`${name} not ready after 20 s: ${stderr}`)), 20_000).unref();
  });
  return {
    name,
    pid: child.pid!,
    url,
    exited,
    async stop(timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
  };
}

/** A downstream with a finite capacity (bench/limited-downstream.ts); left out, the simulator's defaults (unlimited). */
export interface DownstreamOptions {
  /** Batches processed at once (WORKERS; 0 = unlimited). */
  readonly workers?: number;
  /** Cost per item on top of the latency (PER_ITEM_MS). */
  readonly perItemMs?: number;
  /** Batches waiting for a worker before refusals (QUEUE_LIMIT; 0 = an unbounded FIFO). */
  readonly queueLimit?: number;
  /** Random extra latency, 0..jitterMs (JITTER_MS; default 0). */
  readonly jitterMs?: number;
}

/** `node sim/legacy-downstream.ts` on 127.0.0.1, an ephemeral port, fixed latency, no jitter, no failures; `options` add a capacity. */
export function startDownstream(latencyMs: number, options: DownstreamOptions = {}): Promise<Child> {
  const env: Record<string, string> = { LATENCY_MS: String(latencyMs), JITTER_MS: String(options.jitterMs ?? 0), FAILURE_RATE: '0' };
  if (options.workers !== undefined) env.WORKERS = String(options.workers);
  if (options.perItemMs !== undefined) env.PER_ITEM_MS = String(options.perItemMs);
  if (options.queueLimit !== undefined) env.QUEUE_LIMIT = String(options.queueLimit);
  const shape = options.workers === undefined ? '' : `, ${options.workers} workers, +${options.perItemMs ?? 0} ms/item`;
  return spawnReady(`downstream(${latencyMs} ms${shape})`, DOWNSTREAM, env, (line) => /listening on (\S+)/.exec(line)?.[1] ?? null);
}

/** The origin from a baseline server's `{"msg":"<name> ready","port":N}` line; null for any other line. */
function readyOrigin(name: string, line: string): string | null {
  try {
    const entry = JSON.parse(line) as { msg?: string; port?: number };
    return entry.msg === `${name} ready` ? `http://127.0.0.1:${entry.port}` : null;
  } catch {
    return null;
  }
}

/** bench/bare-server.ts on 127.0.0.1, an ephemeral port. */
export function startBare(options: ChildOptions = {}): Promise<Child> {
  return spawnReady('bare fastify', BARE, {}, (line) => readyOrigin('bare', line), options);
}

/** bench/floor-server.ts on 127.0.0.1, an ephemeral port, with the sidecar's DOWNSTREAM_URL, SHARD_COUNT, BATCH_MAX_WAIT_MS (and BATCH_MAX_SIZE) from `env`. */
export function startFloor(env: Record<string, string>, options: ChildOptions = {}): Promise<Child> {
  const knobs = Object.fromEntries(
    ['DOWNSTREAM_URL', 'SHARD_COUNT', 'BATCH_MAX_WAIT_MS', 'BATCH_MAX_SIZE'].filter((name) => env[name] !== undefined).map((name) => [name, env[name]!]),
  );
  return spawnReady('floor', FLOOR, knobs, (line) => readyOrigin('floor', line), options);
}

export interface Sidecar extends Child {
  readonly process: SidecarProcess;
  /** Its log lines at warn level or above (pino level >= 40), for the report. */
  problems(): string[];
}

export interface SidecarChildOptions extends ChildOptions {
  /** Another entry point instead of this tree's src/main.ts: the sidecar at an older commit, from a git worktree (bench/limited-downstream.ts). */
  readonly main?: string;
}

/** The real sidecar (`node src/main.ts`) with this environment on top of its defaults. */
export async function startSidecarChild(env: Record<string, string>, options: SidecarChildOptions = {}): Promise<Sidecar> {
  const sidecar = await startSidecar(env, ['node', ...(options.nodeArgs ?? []), options.main ?? MAIN], { onLine: options.onLine });
  track(sidecar.child);
  return {
    name: 'sidecar',
    pid: sidecar.child.pid!,
    url: sidecar.url,
    exited: sidecar.exited,
    process: sidecar,
    stop: (timeoutMs?: number) => sidecar.stop(timeoutMs),
    problems() {
      const out: string[] = [];
      for (const entry of sidecar.logs) {
        const level = typeof entry.level === 'number' ? entry.level : 0;
        if (level >= 40 || 'raw' in entry) {
          const err = entry.err as { message?: string; code?: string } | undefined;
          out.push(`${String(entry.msg ?? entry.raw ?? '')}${err ? ` (${err.code ?? ''} ${err.message ?? ''})` : ''}`.trim());
        }
      }
      return out;
    },
  };
}
