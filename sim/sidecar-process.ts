/**
 * Starts the real sidecar as a child process (`node src/main.ts`), the way
 * `npm start` does, on an ephemeral port, and stops it with real signals.
 * When it exits before it is ready, the error says why in the sidecar's own
 * words (its error-level log lines and its stderr), for the demo to print.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Sidecars started here and still running: killed if this process exits first. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SidecarProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly logs: Record<string, unknown>[];
  readonly exited: Promise<Exit>;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then the exit; SIGKILL if it has not exited in time. */
  stop(timeoutMs?: number): Promise<Exit>;
}

/**
 * INGRESS_THREADS from this process's environment, when set: the test suite
 * runs the integration tests once in each mode (vitest.config.ts), and a test
 * that sets INGRESS_THREADS itself overrides it.
 */
function ingressThreads(): Record<string, string> {
  const threads = process.env.INGRESS_THREADS;
  return threads === undefined ? {} : { INGRESS_THREADS: threads };
}

/**
 * What a sidecar that did not get ready said about it: its log lines at error
 * level or above (pino: 50 error, 60 fatal) as "msg: err.message", and the end
 * of its stderr (a configuration error, a crash); one per line after a colon.
 */
function why(logs: readonly Record<string, unknown>[], stderr: string): string {
  const lines: string[] = [];
  for (const entry of logs) {
    if (typeof entry.level !== 'number' || entry.level < 50) continue;
    const err = entry.err as { message?: unknown } | undefined;
    lines.push(`${String(entry.msg ?? 'error')}${typeof err?.message === 'string' ? `: ${err.message}` : ''}`);
  }
  const tail = stderr.trim().split('\n').slice(-20).join('\n');
  if (tail !== '') lines.push(tail);
  return lines.length === 0 ? '' : `:\n${lines.join('\n')}`;
}

/**
 * Stops every sidecar started here that still runs, ready or still starting:
 * SIGTERM (it drains), then SIGKILL for any still running after `timeoutMs`.
 * For a program that must leave nothing behind when it stops (the demo on Ctrl-C).
 * Resolves with how many it stopped.
 */
export async function stopAllSidecars(timeoutMs = 15_000): Promise<number> {
  const children = [...running];
  for (const child of children) child.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, timeoutMs);
  await Promise.all(children.map((child) => (child.exitCode !== null || child.signalCode !== null ? undefined : once(child, 'exit'))));
  clearTimeout(timer);
  return children.length;
}

/** Runs main.ts to completion (bad configuration, --help). */
export async function runMain(env: Record<string, string>, args: string[] = []): Promise<Exit & { stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

export interface StartOptions {
  /**
   * Sees every stdout line first; a line it answers true for is its own (not
   * a log line), e.g. `node --trace-gc` output (bench/gc-trace.ts).
   */
  readonly onLine?: (line: string) => boolean;
}

/**
 * Starts the sidecar and waits for its "sidecar ready" log line. `command`
 * replaces `node src/main.ts` (the test of the image's entrypoint passes the
 * Dockerfile's); a leading "node" runs as this Node binary.
 */
export async function startSidecar(
  env: Record<string, string>,
  command: readonly string[] = ['node', MAIN],
  options: StartOptions = {},
): Promise<SidecarProcess> {
  const [program, ...args] = command;
  const child = spawn(program === 'node' ? process.execPath : program, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...ingressThreads(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a Ctrl-C at the terminal reaches only the parent,
    // which passes on exactly one signal (a second would mean "exit at once").
    detached: true,
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (options.onLine?.(line) === true) return;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'sidecar ready') resolve(entry.port as number);
      } catch {
        logs.push({ raw: line });
      }
    });
    // 'close' comes once its stdout and stderr are read to the end, so its last log lines are in `logs`;
    // bounded, in case something it started holds them open.
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    void exited.then(async (exit) => {
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 500).unref())]);
      reject(new Error(`sidecar exited before ready: ${JSON.stringify(exit)}${why(logs, stderr)}`));
    });
    setTimeout(() => reject(new Error(`sidecar not ready after 20 s${why(logs, stderr)}`)), 20_000).unref();
  });
  let port: number;
  try {
    port = await ready;
  } catch (error) {
    child.kill('SIGKILL'); // its own process group would outlive us otherwise
    throw error;
  }
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    logs,
    exited,
    signal: (signal) => child.kill(signal),
    async stop(timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
  };
}
