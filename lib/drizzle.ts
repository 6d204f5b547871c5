import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { clientOf, type DatabaseHandle, type SqlClient } from "./db.js";

/** A drizzle database over a handle's driver, as migrations (and queries written with drizzle) need. */
export type DrizzleDatabase = PgDatabase<PgQueryResultHKT> & { $client: SqlClient };

/**
 * Wraps a handle's client in drizzle's driver for it, loading drizzle only now: requests never
 * do, so it stays out of a function's cold start.
 */
export async function drizzleOf(handle: DatabaseHandle): Promise<DrizzleDatabase> {
  const client = clientOf(handle.db) as never;
  const db =
    handle.driver === "pglite"
      ? (await import("drizzle-orm/pglite")).drizzle({ client })
      : handle.driver === "pg"
        ? (await import("drizzle-orm/node-postgres")).drizzle({ client })
        : (await import("drizzle-orm/neon-serverless")).drizzle({ client });
  return db as unknown as DrizzleDatabase;
}
