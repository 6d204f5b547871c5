import { defineConfig } from "vitest/config";

/** `npm run test:e2e`: the demo page in Debian's Chromium; kept out of `npm test`. */
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.ts"],
    // The PGlite templates the API's database starts from (no TEST_DATABASE_URL here).
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
