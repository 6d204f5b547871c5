import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { detectBuilders } from "@vercel/fs-detectors";
import { describe, expect, it } from "vitest";
import { parseEnv } from "../lib/env.js";

/**
 * vercel.json as Vercel reads it: its own builder detection (`@vercel/fs-detectors`, what a deploy
 * runs) over the files a deploy uploads, with the project's `functions` and build command.
 */
async function detect() {
  const config = JSON.parse(await readFile("vercel.json", "utf8"));
  const pkg = JSON.parse(await readFile("package.json", "utf8"));
  const files = execFileSync("git", ["ls-files"], { encoding: "utf8" }).trim().split("\n");
  const detected = await detectBuilders(files, pkg, {
    functions: config.functions,
    projectSettings: { buildCommand: config.buildCommand },
  });
  return { config, detected };
}

/** Each function's settings, by its file: a function takes the first `functions` key that matches it. */
function settingsByFunction(
  builders: Awaited<ReturnType<typeof detect>>["detected"]["builders"],
): Record<string, { maxDuration?: number } | undefined> {
  const functions = (builders ?? []).filter((builder) => builder.src?.startsWith("api/"));
  return Object.fromEntries(
    functions.map((builder) => [builder.src, Object.values(builder.config?.functions ?? {})[0]]),
  );
}

describe("vercel.json under Vercel's own builder detection", () => {
  it("builds every api/ file as a Node function, with every functions key in use", async () => {
    const { detected } = await detect();
    expect(detected.errors).toBeNull();
    expect(Object.keys(settingsByFunction(detected.builders)).sort()).toEqual([
      "api/cron/purge-expired.ts",
      "api/health.ts",
      "api/openapi.ts",
      "api/session-lock.ts",
      "api/stats.ts",
    ]);
    for (const builder of detected.builders ?? []) {
      if (builder.src?.startsWith("api/")) expect(builder.use).toBe("@vercel/node");
    }
  });

  it("gives the purge more time than its budget, and every other function 10 s", async () => {
    const { detected } = await detect();
    const { "api/cron/purge-expired.ts": purge, ...others } = settingsByFunction(detected.builders);
    const budgetSeconds = parseEnv({}).PURGE_TIME_BUDGET_MS / 1000;
    expect(purge?.maxDuration).toBeGreaterThan(budgetSeconds);
    for (const settings of Object.values(others)) expect(settings?.maxDuration).toBe(10);
  });

  it("schedules the cron on a path that a function serves", async () => {
    const { config, detected } = await detect();
    const functions = Object.keys(settingsByFunction(detected.builders));
    expect(config.crons).toEqual([expect.objectContaining({ path: "/api/cron/purge-expired" })]);
    for (const cron of config.crons) {
      expect(functions).toContain(`${cron.path.slice(1)}.ts`);
      // Once a day at most: what Vercel's Hobby plan runs.
      expect(cron.schedule).toMatch(/^\d+ \d+ \* \* \*$/);
    }
  });
});
