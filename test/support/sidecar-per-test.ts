/**
 * The integration tests' set-up: a real simulated downstream and the real
 * sidecar process per test, both stopped after each test (vitest afterEach),
 * whatever the test did to them.
 */
import { afterEach } from 'vitest';
import { LegacyDownstream } from '../../sim/legacy-downstream.ts';
import { startSidecar, type SidecarProcess, type StartOptions } from '../../sim/sidecar-process.ts';

export interface PerTest {
  downstream(options?: Parameters<typeof LegacyDownstream.start>[0]): Promise<LegacyDownstream>;
  sidecar(env: Record<string, string>, command?: readonly string[], options?: StartOptions): Promise<SidecarProcess>;
}

/** Call at the top of a test file (or a describe block). */
export function sidecarPerTest(): PerTest {
  let downstream: LegacyDownstream | undefined;
  let sidecar: SidecarProcess | undefined;
  afterEach(async () => {
    await sidecar?.stop();
    await downstream?.close();
    sidecar = undefined;
    downstream = undefined;
  });
  return {
    async downstream(options) {
      downstream = await LegacyDownstream.start(options);
      return downstream;
    },
    async sidecar(env, command, options) {
      sidecar = await startSidecar(env, command, options);
      return sidecar;
    },
  };
}
