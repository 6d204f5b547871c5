import pg from "pg";
import { POOL_IDLE_TIMEOUT_MS } from "../lib/db.js";
import { LOCK_SQL } from "../lib/locks.js";

/**
 * The floor: the lock store's own single statements, issued with plain node-postgres named
 * prepared statements (no validation, no conditions, no mapping beyond the row). Used in-process (case 1)
 * and behind the minimal `node:http` server (case 3).
 */

// The lib's own texts, so the floor issues the very same statements (the set takes the per-device
// advisory lock that keeps fencing tokens growing); what differs is only the code around them.
const { get: GET, set: SET, clear: CLEAR } = LOCK_SQL;

type Row = {
  device_id: string;
  active_agent: string;
  locked_at: Date;
  session_ttl: number;
  expires_at: Date;
  version: string;
};

/** A lock as the raw client returns it: the same shape as the lib's `Lock`. */
export type RawLock = {
  deviceId: string;
  activeAgent: string;
  lockedAt: Date;
  expiresAt: Date;
  ttlSeconds: number;
  version: number;
};

function toLock(row: Row): RawLock {
  return {
    deviceId: row.device_id,
    activeAgent: row.active_agent,
    lockedAt: row.locked_at,
    expiresAt: row.expires_at,
    ttlSeconds: row.session_ttl,
    version: Number(row.version),
  };
}

/**
 * A node-postgres pool for the floor and the peers, idle like the lib's: with pg's default 10 s, a
 * pool idle while the other contenders ran would reconnect at the start of each of its runs.
 */
export function peerPool(url: string, poolMax: number): pg.Pool {
  return new pg.Pool({ connectionString: url, max: poolMax, idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS });
}

/** get / set / clear over a node-postgres pool, one named prepared statement each. */
export function createRawLocks(pool: pg.Pool) {
  return {
    async get(deviceId: string): Promise<RawLock | null> {
      const { rows } = await pool.query<Row>({ name: "raw_get", text: GET, values: [deviceId] });
      return rows[0] ? toLock(rows[0]) : null;
    },
    async set(deviceId: string, agent: string, ttlSeconds: number): Promise<RawLock> {
      const { rows } = await pool.query<Row>({
        name: "raw_set",
        text: SET,
        values: [deviceId, agent, ttlSeconds],
      });
      if (!rows[0]) throw new Error("the upsert returned no row");
      return toLock(rows[0]);
    },
    async clear(deviceId: string): Promise<boolean> {
      const { rows } = await pool.query<{ active: boolean }>({
        name: "raw_clear",
        text: CLEAR,
        values: [deviceId],
      });
      return rows[0]?.active === true;
    },
  };
}

export type RawLocks = ReturnType<typeof createRawLocks>;
