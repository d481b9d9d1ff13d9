import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'lib/**/*.test.ts'],
    testTimeout: 60_000,
    // test/native builds things (the seccomp launcher, a prebuild when missing).
    hookTimeout: 180_000,
  },
});
