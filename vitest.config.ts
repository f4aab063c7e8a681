import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Engine and sandbox tests start real processes on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 15 * 60_000,
  },
});
