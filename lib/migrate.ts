import { fileURLToPath } from "node:url";
import { type DatabaseHandle, type Query, queryOf } from "./db.js";
import { drizzleOf } from "./drizzle.js";
import { errorChain } from "./errors.js";

/** The generated SQL migrations (drizzle-kit), shipped beside `lib/`. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../drizzle", import.meta.url));

/**
 * SQLSTATEs of a run that loses to another one at once (two deploys): both found the same
 * migrations missing, and one failed on what the other is making (a unique key of the catalog, a
 * table, type, function or schema that exists) and rolled back.
 */
const MADE_MEANWHILE = new Set(["23505", "42P07", "42710", "42723", "42P06"]);

/**
 * Applies the migrations in `drizzle/` that the database has not seen yet, with the driver's own
 * drizzle migrator. Idempotent. Runs at once all succeed: drizzle's migrator takes no lock, so a
 * run that loses on what another is making tries again, a little later each time, until it finds
 * everything applied (or fails otherwise).
 * @returns how many migrations were applied now and how many the database has in all.
 */
export async function migrate(handle: DatabaseHandle): Promise<{ applied: number; total: number }> {
  const query = queryOf(handle.db);
  let before = await countApplied(query);
  for (let attempt = 1; ; attempt++) {
    try {
      await runMigrator(handle);
      break;
    } catch (error) {
      const codes = [...errorChain(error)].map((current) => (current as { code?: unknown }).code);
      const lost = codes.some((code) => typeof code === "string" && MADE_MEANWHILE.has(code));
      if (!lost || attempt === RETRIES_AFTER_LOSING) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      before = await countApplied(query);
    }
  }
  const total = await countApplied(query);
  return { applied: total - before, total };
}

/** Tries in all when runs at once keep colliding: about 4.5 s of waits in all. */
const RETRIES_AFTER_LOSING = 10;

async function runMigrator(handle: DatabaseHandle): Promise<void> {
  const config = { migrationsFolder: MIGRATIONS_FOLDER };
  const db = (await drizzleOf(handle)) as never;
  if (handle.driver === "pglite") await (await import("drizzle-orm/pglite/migrator")).migrate(db, config);
  else if (handle.driver === "pg")
    await (await import("drizzle-orm/node-postgres/migrator")).migrate(db, config);
  else await (await import("drizzle-orm/neon-serverless/migrator")).migrate(db, config);
}

async function countApplied(query: Query): Promise<number> {
  const [table] = await query<{ exists: boolean }>({
    text: "select to_regclass('drizzle.__drizzle_migrations') is not null as exists",
  });
  if (!table?.exists) return 0;
  const [count] = await query<{ n: number }>({
    text: "select count(*)::int as n from drizzle.__drizzle_migrations",
  });
  return Number(count?.n ?? 0);
}
