/**
 * `npm run db:migrate`: applies `drizzle/` to DATABASE_URL, or to the embedded database when unset.
 * With `--require-database-url` (the Vercel build), an unset DATABASE_URL fails the build instead.
 */
import { databaseOptionsFromEnv, openDatabase } from "../lib/db.js";
import { ConfigError, env as readEnv } from "../lib/env.js";
import { migrate } from "../lib/migrate.js";
import { describeDatabase } from "./describe-database.js";

try {
  const env = readEnv();
  if (process.argv.includes("--require-database-url") && !env.DATABASE_URL) {
    throw new ConfigError(
      "DATABASE_URL must be set for a deploy: the functions cannot keep an embedded database.",
    );
  }
  const handle = await openDatabase(databaseOptionsFromEnv(env));
  try {
    const { applied, total } = await migrate(handle);
    console.log(
      `${describeDatabase(env, handle.driver)}: ${applied} migration(s) applied now, ${total} in all.`,
    );
  } finally {
    await handle.close();
  }
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exitCode = 1;
}
