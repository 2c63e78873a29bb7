import { defineConfig } from 'vitest/config';

// `npm run test:deploy`: tests that need nginx (scripts/ensure-nginx.sh installs it).
export default defineConfig({
  test: {
    include: ['test/deploy/rolling-restart.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
