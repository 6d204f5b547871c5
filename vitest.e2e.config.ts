import { defineConfig } from "vitest/config";

/** `npm run test:e2e`: the demo page in Debian's Chromium; kept out of `npm test`. */
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
