/**
 * The parent's side of bench/generator.ts: spawns it with this Node binary
 * (process.execPath), passes the config, calls back on each progress event
 * (so the parent can sample the server's CPU and metrics at the start and end
 * of the measured window), and resolves with the last line's figures.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ClosedLoopResult } from './closed-loop.ts';
import type { GeneratorConfig, GeneratorCpu, GeneratorRequests } from './generator.ts';
import type { SegmentLoopResult } from './segment-loop.ts';

const GENERATOR = fileURLToPath(new URL('./generator.ts', import.meta.url));

export interface GeneratorEvent {
  readonly event: 'segment' | 'warm' | 'start' | 'sent';
  readonly index?: number;
}

export type OpenGeneratorResult = SegmentLoopResult & { readonly mode: 'open'; readonly cpu: GeneratorCpu; readonly pid: number; readonly requests: GeneratorRequests };
export type ClosedGeneratorResult = { readonly mode: 'closed'; readonly closed: ClosedLoopResult; readonly cpu: GeneratorCpu; readonly pid: number };

export interface RunGeneratorOptions {
  /** Aborted: the generator is killed (SIGKILL) and the promise rejects. */
  readonly signal?: AbortSignal;
}

export function runGenerator(config: GeneratorConfig & { mode: 'open' }, onEvent?: (event: GeneratorEvent) => void, options?: RunGeneratorOptions): Promise<OpenGeneratorResult>;
export function runGenerator(config: GeneratorConfig & { mode: 'closed' }, onEvent?: (event: GeneratorEvent) => void, options?: RunGeneratorOptions): Promise<ClosedGeneratorResult>;
export function runGenerator(
  config: GeneratorConfig,
  onEvent?: (event: GeneratorEvent) => void,
  options: RunGeneratorOptions = {},
): Promise<OpenGeneratorResult | ClosedGeneratorResult> {
  const child = spawn(process.execPath, [GENERATOR, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 10_000) stderr += chunk.toString();
  });
  // If the parent dies, the generator must not keep loading the machine.
  const kill = (): void => void child.kill('SIGKILL');
  process.once('exit', kill);
  // A parent that stops early (the demo on Ctrl-C) stops it at once; the promise then rejects.
  if (options.signal?.aborted === true) kill();
  else options.signal?.addEventListener('abort', kill, { once: true });
  return new Promise((resolve, reject) => {
    let result: OpenGeneratorResult | ClosedGeneratorResult | null = null;
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: { event?: string };
      try {
        entry = JSON.parse(line) as { event?: string };
      } catch {
        return;
      }
      if (entry.event === 'result') result = { ...(entry as object), pid: child.pid! } as OpenGeneratorResult | ClosedGeneratorResult;
      else onEvent?.(entry as GeneratorEvent);
    });
    child.once('exit', (code, signal) => {
      process.removeListener('exit', kill);
      if (result !== null && code === 0) resolve(result);
      else reject(new Error(`generator exited ${JSON.stringify({ code, signal })} without a result: ${stderr}`));
    });
  });
}
