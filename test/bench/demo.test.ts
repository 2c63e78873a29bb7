import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../../demo/demo.ts', import.meta.url));

describe('npm run demo', () => {
  it('runs its steady, burst and recovery phases and, with DEMO_EXIT=1, drains and exits by itself', async () => {
    // Light rates and short phases: this is a smoke test of the demo, not of the sidecar's capacity.
    const child = spawn(process.execPath, [DEMO], {
      env: {
        PATH: process.env.PATH,
        DEMO_EXIT: '1',
        DEMO_PORT: '0',
        DEMO_RATE: '200',
        DEMO_STEADY_S: '1',
        DEMO_BURST_RATE: '1000',
        DEMO_BURST_S: '0.5',
        DEMO_RECOVERY_S: '1',
        DEMO_CONNECTIONS: '100',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(out).toMatch(/1\. steady, 200 req\/s/);
    expect(out).toMatch(/overhead p99: +[\d.]+ ms, target ≤ 15 ms/);
    expect(out).toMatch(/2\. burst, 1000 req\/s offered/);
    expect(out).toMatch(/500 sent: 500 answered/);
    expect(out).toMatch(/3\. recovery/);
    expect(out).toMatch(/sidecar drained and exited with code 0/);
    expect(code).toBe(0);
  });
});
