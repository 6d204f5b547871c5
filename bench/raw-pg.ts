import type pg from "pg";

/**
 * The floor: the same single statements as the lock store, issued with plain node-postgres named
 * prepared statements (no ORM, no validation beyond what the SQL needs). Used in-process (case 1)
 * and behind the minimal `node:http` server (case 3).
 */

const COLUMNS = "device_id, active_agent, locked_at, session_ttl, expires_at, version";

const GET = `select ${COLUMNS} from conversation_states where device_id = $1 and expires_at > now()`;
const SET = `insert into conversation_states (${COLUMNS})
  values ($1, $2, now(), $3, now() + make_interval(secs => $3::integer), nextval('conversation_states_version_seq'))
  on conflict (device_id) do update set active_agent = excluded.active_agent, locked_at = excluded.locked_at,
    session_ttl = excluded.session_ttl, expires_at = excluded.expires_at,
    version = nextval('conversation_states_version_seq')
  returning ${COLUMNS}`;
const CLEAR = "delete from conversation_states where device_id = $1 returning expires_at > now() as active";

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
