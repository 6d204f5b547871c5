import { sql } from "drizzle-orm";
import type { DrizzleDatabase as Database } from "../../lib/drizzle.js";

/** Everything a request could change: every row of the table, and the version sequence. */
export type Snapshot = { rows: string; sequence: string };

/**
 * Reads the whole of `conversation_states` (ordered, times in microseconds) and the state of the
 * version sequence, so that two snapshots are equal exactly when nothing was written in between.
 */
export async function snapshot(db: Database): Promise<Snapshot> {
  const rows = (await db.execute(sql`
    select device_id::text, active_agent, session_ttl, version::text,
           (extract(epoch from locked_at) * 1000000)::bigint::text as locked_at_us,
           (extract(epoch from expires_at) * 1000000)::bigint::text as expires_at_us
    from conversation_states order by device_id`)) as { rows: unknown[] };
  const sequence = (await db.execute(
    sql`select last_value::text as last_value, is_called from conversation_states_version_seq`,
  )) as { rows: { last_value: string; is_called: boolean }[] };
  const [state] = sequence.rows;
  return { rows: JSON.stringify(rows.rows), sequence: `${state?.last_value}:${state?.is_called}` };
}
