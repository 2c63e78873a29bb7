/**
 * The command line of a bench phase run alone (`node bench/hot-path.ts
 * [phase ...]`, `node bench/ingress-threads.ts [phase ...]`): the phases asked
 * for (all when none; exit 2 on an unknown one), every child process killed on
 * exit or Ctrl-C, the results written to bench/results/<name>.json and .md and
 * the summary printed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { killAll } from './children.ts';

export interface Standalone<Phase extends string, Results> {
  /** File name under bench/results, and the name in messages. */
  readonly name: string;
  readonly title: string;
  readonly phases: readonly Phase[];
  readonly quick: boolean;
  run(log: (line: string) => void, phases: readonly Phase[]): Promise<Results>;
  render(results: Results): string;
  /** A last word after "written: ..." (how long it took, say). */
  footer?(results: Results): string;
}

export async function runStandalone<Phase extends string, Results>(phase: Standalone<Phase, Results>): Promise<never> {
  const args = process.argv.slice(2);
  const isPhase = (arg: string): arg is Phase => (phase.phases as readonly string[]).includes(arg);
  const unknown = args.filter((arg) => !isPhase(arg));
  if (unknown.length > 0) {
    process.stderr.write(`unknown phase(s) ${unknown.join(', ')}; phases: ${phase.phases.join(', ')}\n`);
    process.exit(2);
  }
  const asked = args.filter(isPhase);
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  try {
    log(`${phase.title}: ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(2)}${phase.quick ? ' — BENCH_QUICK: a smoke test, not a measurement' : ''}`);
    const results = await phase.run(log, asked.length > 0 ? asked : phase.phases);
    const dir = fileURLToPath(new URL('./results/', import.meta.url));
    mkdirSync(dir, { recursive: true });
    const summary = phase.render(results);
    writeFileSync(`${dir}${phase.name}.json`, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(`${dir}${phase.name}.md`, summary);
    log('');
    log(summary);
    log(`written: bench/results/${phase.name}.json, bench/results/${phase.name}.md${phase.footer === undefined ? '' : ` ${phase.footer(results)}`}`);
    process.exit(0);
  } catch (error) {
    process.stderr.write(`${phase.name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAll();
    process.exit(1);
  }
}
