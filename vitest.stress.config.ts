import { defineConfig } from "vitest/config";

/**
 * `npm run test:stress`: the long runs, kept out of `npm test`. Purge under load, crash safety and
 * the dev server through database faults (test/stress/*.stress.ts), plus the property and model
 * tests again with five times their runs (FC_RUNS_SCALE; set it higher for a longer soak). Files
 * run one at a time so that the latency bounds of one are not spent on another. Postgres-only
 * parts need TEST_DATABASE_URL; without it the purge runs on PGlite and the rest is skipped.
 */
export default defineConfig({
  test: {
    include: ["test/stress/**/*.stress.ts", "test/property.*.test.ts", "test/model.*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    env: { FC_RUNS_SCALE: process.env.FC_RUNS_SCALE ?? "5" },
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
