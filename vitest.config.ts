import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end suites spawn the built server and wait on real sockets.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Several suites start emulators and servers; two cores, so keep it calm.
    maxWorkers: 2,
    // The default report, then one plain "N passed, N failed" line for CI.
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
