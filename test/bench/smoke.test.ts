import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { selectPhases } from '../../bench/run.ts';

const RUN = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('npm run bench', () => {
  it('selects phases by name, by their old names, and less those skipped; refuses a name it does not know', () => {
    expect(selectPhases('', '').map((p) => p.name)).toEqual(['added-latency', 'cost', 'bursts', 'limited-downstream', 'ingress-threads', 'window-mode']);
    expect(selectPhases('hot-path,limited', 'cost').map((p) => p.name)).toEqual(['added-latency', 'bursts', 'limited-downstream']);
    expect(() => selectPhases('micro', '')).toThrow(/unknown phase "micro"/);
  });

  it('BENCH_QUICK=1: runs the phases asked for, prints one table of their verdicts and writes each phase its results', { timeout: 90_000 }, async () => {
    // The smallest run that goes through the whole kit: the generator, the launcher, the window, the report.
    const env = { PATH: process.env.PATH, BENCH_QUICK: '1', BENCH_PHASE: 'added-latency,limited-downstream', BENCH_RATES: '500', BENCH_FLOOR: '0', BENCH_RESULTS: out };
    const child = spawn(process.execPath, [RUN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, output).toBe(0);
    expect(output).toMatch(/\| added-latency \| added p99 at 500 req\/s \(sidecar p99 − downstream p99 \(measured\) − bare p99\) \| [\d.]+ − [\d.]+ − [\d.]+ = -?[\d.]+ ms \| ≤ 15 ms \|/);
    expect(output).toMatch(/\| limited-downstream \| answered 200 \| [\d.]+% \| ≥ 95% of offered \|/);
    expect(readdirSync(out).sort()).toEqual(['added-latency.json', 'added-latency.md', 'limited-downstream.json', 'limited-downstream.md']);
    const added = JSON.parse(readFileSync(join(out, 'added-latency.json'), 'utf8')) as { results: { quick: boolean; runs: { variant: string }[] } };
    expect(added.results.quick).toBe(true);
    expect(added.results.runs.map((run) => run.variant)).toEqual(['bare', 'sidecar']);
  });
});
