import { defineConfig } from 'vitest/config';

// `npm run test:soak`: the long reliability runs (30 s overload, minutes of soak).
export default defineConfig({
  test: {
    include: ['test/reliability/overload.test.ts', 'test/reliability/soak.test.ts'],
    env: { OVERLOAD_SECONDS: process.env.OVERLOAD_SECONDS ?? '30' },
    testTimeout: 600_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
