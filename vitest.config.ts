import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Needs nginx: run by `npm run test:deploy` (also in .ci/run).
    exclude: ['test/deploy/rolling-restart.test.ts'],
    // Integration tests start real processes and servers; the machine has 2 cores.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
