import { eq, sql } from "drizzle-orm";
import type { DrizzleDatabase as Database } from "../../lib/drizzle.js";
import { conversationStates as locks } from "../../lib/schema.js";

/**
 * Makes a device's lock expire `secondsAgo` seconds ago by the database clock (its `locked_at`
 * moves back with it, so `expires_at = locked_at + ttl` still holds). Tests use it instead of
 * sleeping for a TTL.
 * @param secondsAgo @default 1
 * @returns whether the device had a row to expire
 */
export async function expireLock(db: Database, deviceId: string, secondsAgo = 1): Promise<boolean> {
  const rows = await db
    .update(locks)
    .set({
      expiresAt: sql`now() - make_interval(secs => ${secondsAgo}::integer)`,
      lockedAt: sql`now() - make_interval(secs => ${secondsAgo}::integer + ${locks.sessionTtlSeconds})`,
    })
    .where(eq(locks.deviceId, deviceId))
    .returning({ deviceId: locks.deviceId });
  return rows.length === 1;
}

/**
 * Moves a device's lock `seconds` into the past (both `locked_at` and `expires_at`), so that it
 * looks that much older and is still active when its TTL is longer.
 * @returns whether the device had a row to move
 */
export async function backdateLock(db: Database, deviceId: string, seconds: number): Promise<boolean> {
  const rows = await db
    .update(locks)
    .set({
      lockedAt: sql`${locks.lockedAt} - make_interval(secs => ${seconds}::integer)`,
      expiresAt: sql`${locks.expiresAt} - make_interval(secs => ${seconds}::integer)`,
    })
    .where(eq(locks.deviceId, deviceId))
    .returning({ deviceId: locks.deviceId });
  return rows.length === 1;
}

/**
 * Inserts `count` rows for random devices whose locks expired a minute ago, in one statement,
 * each with a version from the sequence like a real set.
 */
export async function insertExpiredLocks(
  db: Database,
  count: number,
  agent = "expired-agent",
): Promise<void> {
  await db.execute(sql`
    insert into ${locks} (device_id, active_agent, locked_at, session_ttl, expires_at)
    select gen_random_uuid(), ${agent}, now() - interval '61 seconds', 1, now() - interval '60 seconds'
    from generate_series(1, ${count}::integer)`);
}

/** Rows in the table, live or expired. */
export async function countRows(db: Database): Promise<number> {
  const result = (await db.execute(sql`select count(*)::int as n from ${locks}`)) as {
    rows: { n: number }[];
  };
  return Number(result.rows[0]?.n);
}

/** The database clock, for comparing a lock's times with. */
export async function databaseNow(db: Database): Promise<Date> {
  const result = (await db.execute(sql`select extract(epoch from now())::float8 * 1000 as ms`)) as {
    rows: { ms: number | string }[];
  };
  return new Date(Number(result.rows[0]?.ms ?? Number.NaN));
}
