import { defineConfig } from 'vitest/config';

/**
 * The tests that start the real sidecar process: run a second time with two
 * ingress threads (INGRESS_THREADS=2, ADR 0017), so every contract they check
 * holds in both modes. sim/sidecar-process.ts passes INGRESS_THREADS on to the
 * sidecar unless a test sets it.
 */
const SIDECAR_PROCESS_TESTS = [
  'test/integration/**/*.test.ts',
  'test/telemetry/metrics.test.ts',
  'test/telemetry/tracing.test.ts',
  'test/reliability/faults.test.ts',
  'test/reliability/hostile-input.test.ts',
];

export default defineConfig({
  test: {
    // Integration tests start real processes and servers; the machine has 2 cores.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: {
          name: 'single-thread',
          include: ['test/**/*.test.ts'],
          // Run by `npm run test:deploy` (needs nginx) and `npm run test:soak`, both in .ci/run.
          exclude: ['test/deploy/rolling-restart.test.ts', 'test/reliability/soak.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'ingress-threads',
          include: SIDECAR_PROCESS_TESTS,
          env: { INGRESS_THREADS: '2' },
        },
      },
    ],
  },
});
