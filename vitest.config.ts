import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests share kernel state (namespaces, mounts, a dockerd): run files one at a time.
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default'],
    globalSetup: ['test/global-setup.ts'],
    env: { CORRAL_LOG_LEVEL: process.env.CORRAL_LOG_LEVEL ?? 'warn' },
  },
});
