/**
 * The container's entrypoint, run here as the image would run it (there is no
 * Docker engine on these machines): the exact ENTRYPOINT command of the
 * Dockerfile, from the repository root, with NODE_ENV=production. It must serve,
 * and drain on SIGTERM with exit 0.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar } from '../../sim/sidecar-process.ts';
import { get, post } from '../support/http.ts';

const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');

function instruction(name: string): string[] {
  return [...dockerfile.matchAll(new RegExp(`^${name}\\s+(.+)$`, 'gm'))].map((match) => match[1].trim());
}

describe('container image', () => {
  it('runs node directly as PID 1 in exec form, as a non-root user', () => {
    const [entrypoint] = instruction('ENTRYPOINT').slice(-1);
    const command = JSON.parse(entrypoint) as string[];
    expect(command[0]).toBe('node');
    expect(command).not.toContain('npm');
    expect(instruction('USER').slice(-1)[0]).not.toMatch(/^(root|0)$/);
    expect(instruction('FROM').every((from) => from.startsWith('node:24-slim'))).toBe(true);
  });

  it("serves and drains on SIGTERM when started with the image's entrypoint command", async () => {
    const command = JSON.parse(instruction('ENTRYPOINT').slice(-1)[0]) as string[];
    const downstream = await LegacyDownstream.start({ latencyMs: 100 });
    const sidecar = await startSidecar(
      { NODE_ENV: 'production', DOWNSTREAM_URL: downstream.url, BATCH_MAX_WAIT_MS: '50' },
      command,
    );
    try {
      expect((await get(`${sidecar.url}/healthz`)).status).toBe(200);
      expect((await post(sidecar.url, { id: 'first' })).body).toEqual({ echo: { id: 'first' } });
      const inFlight = Promise.all([1, 2, 3].map((id) => post(sidecar.url, { id })));
      await new Promise((resolve) => setTimeout(resolve, 80));
      sidecar.signal('SIGTERM');
      const answers = await inFlight;
      expect(answers.map((answer) => answer.body)).toEqual([1, 2, 3].map((id) => ({ echo: { id } })));
      expect((await sidecar.exited).code).toBe(0);
    } finally {
      await sidecar.stop();
      await downstream.close();
    }
  });
});
