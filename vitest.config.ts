import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Run by `npm run test:deploy` (needs nginx) and `npm run test:soak`, both in .ci/run.
    exclude: ['test/deploy/rolling-restart.test.ts', 'test/reliability/soak.test.ts'],
    // Integration tests start real processes and servers; the machine has 2 cores.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
