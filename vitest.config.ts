import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Without TEST_DATABASE_URL: nothing; with it: one migrated template database per run.
    globalSetup: ["test/global-setup.ts"],
    // Every test bounds its own waits far below these; they only stop a hang from stalling CI.
    testTimeout: 20_000,
    // PGlite takes a few seconds to start on a busy 2-core machine; a fresh server database less.
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    // Vitest's default on 2 cores is one worker; much of a file's time is waiting on PGlite's start
    // or on the server, so two overlap well. Every file has databases of its own.
    maxWorkers: 2,
  },
});
