import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../../demo/demo.ts', import.meta.url));

// Light rates and short phases: these are smoke tests of the demo, not of the sidecar's capacity.
const LIGHT = {
  DEMO_PORT: '0',
  DEMO_RATE: '200',
  DEMO_STEADY_S: '1',
  DEMO_SURGE_RATE: '1000',
  DEMO_SURGE_S: '0.5',
  DEMO_RECOVERY_S: '1',
  DEMO_CONNECTIONS: '100',
};

function demo(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [DEMO], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return { child, output: () => out };
}

/** Whether something accepts connections on 127.0.0.1:port. */
async function listening(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

describe('npm run demo', () => {
  it('runs its steady, surge and recovery phases and, with DEMO_EXIT=1, drains and exits by itself', async () => {
    const { child, output } = demo({ ...LIGHT, DEMO_EXIT: '1' });
    const [code] = (await once(child, 'exit')) as [number | null];
    const out = output();
    expect(out).toMatch(/its shape: +4 workers, each call 50 ms \+ 0\.5 ms per item: at most 4,000 items\/s/);
    expect(out).toMatch(/1\. steady, 200 req\/s/);
    // Against a downstream of 4 calls at a time the overhead is the wait for a slot: the 15 ms target is for one with room.
    expect(out).toMatch(/overhead p99: +[\d.]+ ms \(sidecar_overhead_seconds: .* the 15 ms target is for a downstream with room\)/);
    expect(out).toMatch(/2\. surge, 1000 req\/s offered/);
    expect(out).toMatch(/500 sent: 500 answered: \d+ × 200, \d+ × 503 with retry-after, \d+ × 504, \d+ other/);
    expect(out).toMatch(/downstream: +\d[\d,]* items\/s answered = \d+% of its 4,000 maximum; its own queue wait p99 [\d.]+ ms/);
    expect(out).toMatch(/call limit: +(n\/a|\d+–\d+)/);
    expect(out).toMatch(/3\. recovery/);
    expect(out).toMatch(/sidecar drained and exited with code 0/);
    expect(code).toBe(0);
  });

  it('stops the generator, the sidecar and the downstream on SIGINT during a load phase, and exits', async () => {
    const { child, output } = demo({ ...LIGHT, DEMO_STEADY_S: '20' });
    while (!/1\. steady at 200 req\/s/.test(output())) {
      if (child.exitCode !== null) throw new Error(`the demo exited early:\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const port = Number(/sidecar: +http:\/\/127\.0\.0\.1:(\d+)\/process/.exec(output())![1]);
    expect(await listening(port)).toBe(true);
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(output()).toMatch(/SIGINT: stopping/);
    expect(output()).toMatch(/sidecar drained and exited with code 0/);
    expect(code).toBe(0);
    expect(await listening(port)).toBe(false);
  });

  it("prints the sidecar's own error when it cannot start (its port taken), and exits 1", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const { child, output } = demo({ ...LIGHT, DEMO_PORT: String(port) });
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(output()).toMatch(/demo failed: sidecar exited before ready/);
      expect(output()).toMatch(/cannot listen: listen EADDRINUSE/);
      expect(code).toBe(1);
    } finally {
      taken.close();
    }
  });
});
