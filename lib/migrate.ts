import { fileURLToPath } from "node:url";
import { type DatabaseHandle, type Query, queryOf } from "./db.js";
import { drizzleOf } from "./drizzle.js";

/** The generated SQL migrations (drizzle-kit), shipped beside `lib/`. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../drizzle", import.meta.url));

/**
 * Applies the migrations in `drizzle/` that the database has not seen yet, with the driver's own
 * drizzle migrator. Idempotent; concurrent runs on Postgres are serialised by drizzle's table.
 * @returns how many migrations were applied now and how many the database has in all.
 */
export async function migrate(handle: DatabaseHandle): Promise<{ applied: number; total: number }> {
  const query = queryOf(handle.db);
  const before = await countApplied(query);
  const config = { migrationsFolder: MIGRATIONS_FOLDER };
  const db = (await drizzleOf(handle)) as never;
  if (handle.driver === "pglite") await (await import("drizzle-orm/pglite/migrator")).migrate(db, config);
  else if (handle.driver === "pg")
    await (await import("drizzle-orm/node-postgres/migrator")).migrate(db, config);
  else await (await import("drizzle-orm/neon-serverless/migrator")).migrate(db, config);
  const total = await countApplied(query);
  return { applied: total - before, total };
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
