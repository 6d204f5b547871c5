import { type Database, queryOf, type Statement } from "./db.js";
import { ApiError } from "./errors.js";
import { assertAgentAllowed, parseDeviceId } from "./validation.js";

/** An active lock: which agent owns a device's conversation, until when, under which fencing token. */
export type Lock = {
  deviceId: string;
  activeAgent: string;
  /** Database time of the last successful set. */
  lockedAt: Date;
  /** `lockedAt + ttlSeconds`, by the database clock. */
  expiresAt: Date;
  ttlSeconds: number;
  /** Fencing token: larger for every successful set, never reused. */
  version: number;
};

/**
 * When a set or clear may happen.
 * - `always`: unconditionally (a set overwrites, a renewal when the agent is the same).
 * - `ifAbsent`: only when no active lock exists (`If-None-Match: *`).
 * - `ifVersion`: only when the active lock has this version (`If-Match: "<version>"`).
 * - `ifPresent`: only when some active lock exists (`If-Match: *`).
 */
export type Condition =
  | { kind: "always" }
  | { kind: "ifAbsent" }
  | { kind: "ifVersion"; version: number }
  | { kind: "ifPresent" };

/** A condition that did not hold, with the lock as it is now (`null`: none). */
export type Refusal = { ok: false; reason: "held" | "version_mismatch" | "absent"; current: Lock | null };

export type SetResult = { ok: true; lock: Lock } | Refusal;
export type ClearResult = { ok: true; cleared: boolean } | Refusal;

export type PurgeResult = { purged: number; batches: number; durationMs: number; complete: boolean };

export type LockStats = {
  activeLocks: number;
  expiredAwaitingPurge: number;
  byAgent: Record<string, number>;
  oldestLockAgeSeconds: number | null;
  averageLockAgeSeconds: number | null;
};

/** Limits a store enforces before any SQL runs. */
export type LockStoreOptions = {
  /** @default 86400 */
  defaultTtlSeconds?: number;
  /** @default 604800 */
  maxTtlSeconds?: number;
  /** Only these agents may take a lock. @default undefined (any valid name) */
  allowedAgents?: readonly string[];
};

export type SetLockInput = { agent: string; ttlSeconds?: number | undefined; condition?: Condition };

export type LockStore = ReturnType<typeof createLockStore>;

const ALWAYS: Condition = { kind: "always" };
/** The largest Postgres `integer`: `session_ttl`, and the purge functions' `batch_size`. */
const INT4_MAX = 2_147_483_647;

/** The version an `ifVersion` condition names, once it is one the sequence can have given. */
function versionOf(condition: { version: number }): number {
  if (!(Number.isSafeInteger(condition.version) && condition.version >= 0)) {
    throw new ApiError(
      "invalid_precondition",
      `The version to match must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}.`,
    );
  }
  return condition.version;
}

/**
 * The lock operations over one database. Get, set and clear are each one prepared SQL statement
 * on the success path, with the condition and `now()` inside it; a refusal reads the current
 * lock once more to report it. Invalid input throws an `ApiError` before any SQL.
 */
export function createLockStore(db: Database, options: LockStoreOptions = {}) {
  const defaultTtlSeconds = options.defaultTtlSeconds ?? 86_400;
  const maxTtlSeconds = options.maxTtlSeconds ?? 604_800;
  if (!(Number.isInteger(maxTtlSeconds) && maxTtlSeconds >= 1 && maxTtlSeconds <= INT4_MAX)) {
    throw new RangeError(
      `maxTtlSeconds must be a whole number from 1 to ${INT4_MAX} (session_ttl is an integer).`,
    );
  }
  if (
    !(Number.isInteger(defaultTtlSeconds) && defaultTtlSeconds >= 1 && defaultTtlSeconds <= maxTtlSeconds)
  ) {
    throw new RangeError(
      `defaultTtlSeconds must be a whole number from 1 to maxTtlSeconds (${maxTtlSeconds}).`,
    );
  }
  const query = queryOf(db);

  async function get(deviceId: string): Promise<Lock | null> {
    const [row] = await query<LockRow>(SQL.get, [parseDeviceId(deviceId)]);
    return row ? toLock(row) : null;
  }

  async function refusal(deviceId: string, reason: Refusal["reason"]): Promise<Refusal> {
    return { ok: false, reason, current: await get(deviceId) };
  }

  async function set(rawDeviceId: string, input: SetLockInput): Promise<SetResult> {
    const deviceId = parseDeviceId(rawDeviceId);
    assertAgentAllowed(input.agent, options.allowedAgents);
    const ttlSeconds = input.ttlSeconds ?? defaultTtlSeconds;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > maxTtlSeconds) {
      throw new ApiError("invalid_body", `ttlSeconds: must be a whole number from 1 to ${maxTtlSeconds}`, {
        fields: [{ field: "ttlSeconds", message: `must be a whole number from 1 to ${maxTtlSeconds}` }],
      });
    }
    const params = [deviceId, input.agent, ttlSeconds];
    const condition = input.condition ?? ALWAYS;
    switch (condition.kind) {
      case "always": {
        const [row] = await query<LockRow>(SQL.set, params);
        if (!row) throw new Error("An unconditional upsert returned no row.");
        return { ok: true, lock: toLock(row) };
      }
      case "ifAbsent": {
        const [row] = await query<LockRow>(SQL.acquire, params);
        return row ? { ok: true, lock: toLock(row) } : refusal(deviceId, "held");
      }
      case "ifVersion": {
        const [row] = await query<LockRow>(SQL.setIfVersion, [...params, versionOf(condition)]);
        return row ? { ok: true, lock: toLock(row) } : refusal(deviceId, "version_mismatch");
      }
      case "ifPresent": {
        const [row] = await query<LockRow>(SQL.setIfPresent, params);
        return row ? { ok: true, lock: toLock(row) } : refusal(deviceId, "absent");
      }
    }
  }

  async function clear(rawDeviceId: string, condition: Condition = ALWAYS): Promise<ClearResult> {
    const deviceId = parseDeviceId(rawDeviceId);
    switch (condition.kind) {
      case "always": {
        // An expired row is deleted too, but it was no lock: only an active one counts as cleared.
        const [row] = await query<{ active: boolean }>(SQL.clear, [deviceId]);
        return { ok: true, cleared: row?.active === true };
      }
      case "ifVersion": {
        const [row] = await query(SQL.clearIfVersion, [deviceId, versionOf(condition)]);
        return row ? { ok: true, cleared: true } : refusal(deviceId, "version_mismatch");
      }
      case "ifPresent": {
        const [row] = await query(SQL.clearIfPresent, [deviceId]);
        return row ? { ok: true, cleared: true } : refusal(deviceId, "absent");
      }
      case "ifAbsent":
        throw new ApiError(
          "invalid_precondition",
          "If-None-Match applies to setting a lock, not clearing it.",
        );
    }
  }

  /**
   * Deletes expired rows in batches of at most `batchSize`, each one short statement, until none
   * are left or `timeBudgetMs` is spent. A first statement picks the order:
   * - **heap order** when the expired rows are at least as many as the table's pages (and a
   *   batch): batches walk the table from its first page, each deleting the expired rows of the
   *   next pages, so every page is visited once with all its expired rows at a time;
   * - **expiry order** otherwise: batches read the `expires_at` index, each from the previous
   *   batch's cutoff (the expiry of its last row), so a few expired rows in a large table cost a
   *   few page reads, not a pass over it.
   * A row a writer holds is waited for (one statement) and deleted only if it is still expired
   * then; two purges at once take turns batch by batch (an advisory lock each batch takes first),
   * and each row counts for the one that deleted it. A row that expires while a heap-order walk
   * is past it waits for the next purge.
   */
  async function purgeExpired(limits: { batchSize: number; timeBudgetMs: number }): Promise<PurgeResult> {
    const { batchSize, timeBudgetMs } = limits;
    if (!(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= INT4_MAX)) {
      throw new RangeError(`batchSize must be a whole number from 1 to ${INT4_MAX}.`);
    }
    if (!(Number.isFinite(timeBudgetMs) && timeBudgetMs >= 0)) {
      throw new RangeError("timeBudgetMs must be a finite number of milliseconds, at least 0.");
    }
    const startedAt = performance.now();
    const [order] = await query<{ heap: boolean; pages: number }>(SQL.purgeOrder, [batchSize]);
    // Each batch starts after where the previous one ended, passed back as text: a ctid, or an
    // expiry with the database's microseconds (a Date would round them to milliseconds).
    // `next: null`: the batch took the last expired rows (fewer than batchSize were left; in
    // heap order, its window reached the table's last page without finding batchSize).
    let windowPages = HEAP_WINDOW_PAGES.initial;
    const heapBatch = async (after: string) => {
      const first = pageOf(after);
      const end = first + windowPages;
      const [row] = await query<{ purged: number; last: string | null }>(SQL.purgeHeapBatch, [
        after,
        `(${end},0)`,
        batchSize,
      ]);
      const purged = Number(row?.purged ?? 0);
      const last = row?.last ?? null;
      // The next window: a quarter more pages than this batch needed for batchSize rows.
      const needed = last ? pageOf(last) - first + 1 : (windowPages * batchSize) / Math.max(purged, 1);
      windowPages = Math.min(HEAP_WINDOW_PAGES.max, Math.max(1, Math.ceil(needed * 1.25)));
      // Without a last row the batch took its whole window: the next starts on the page after it.
      return { purged, next: last ?? (end < Number(order?.pages) ? `(${end - 1},65535)` : null) };
    };
    const expiryBatch = async (after: string) => {
      const [row] = await query<{ purged: number; next: string | null }>(SQL.purgeExpiryBatch, [
        after,
        batchSize,
      ]);
      return { purged: Number(row?.purged ?? 0), next: row?.next ?? null };
    };
    const batch = order?.heap ? heapBatch : expiryBatch;
    let after = order?.heap ? "(0,0)" : "-infinity";
    let purged = 0;
    let batches = 0;
    for (;;) {
      const { purged: purgedNow, next } = await batch(after);
      purged += purgedNow;
      batches += 1;
      const durationMs = Math.round(performance.now() - startedAt);
      if (next === null) return { purged, batches, durationMs, complete: true };
      if (durationMs >= timeBudgetMs) return { purged, batches, durationMs, complete: false };
      after = next;
    }
  }

  /** Counts and ages of the locks, in one statement, by the database clock. */
  async function stats(): Promise<LockStats> {
    const [row] = await query<{
      active_locks: number;
      expired: number;
      by_agent: Record<string, number> | string;
      oldest_s: number | null;
      average_s: number | null;
    }>(SQL.stats);
    if (!row) throw new Error("The stats statement returned no row.");
    const seconds = (value: number | null) =>
      value === null ? null : Math.round(Number(value) * 1000) / 1000;
    return {
      activeLocks: Number(row.active_locks),
      expiredAwaitingPurge: Number(row.expired),
      byAgent: typeof row.by_agent === "string" ? JSON.parse(row.by_agent) : row.by_agent,
      oldestLockAgeSeconds: seconds(row.oldest_s),
      averageLockAgeSeconds: seconds(row.average_s),
    };
  }

  return { get, set, clear, purgeExpired, stats };
}

/** A row as the drivers return it (int8 comes as a string from node-postgres). */
type LockRow = {
  device_id: string;
  active_agent: string;
  locked_at: Date;
  session_ttl: number;
  expires_at: Date;
  version: string | number | bigint;
};

function toLock(row: LockRow): Lock {
  return {
    deviceId: row.device_id,
    activeAgent: row.active_agent,
    lockedAt: row.locked_at,
    expiresAt: row.expires_at,
    ttlSeconds: row.session_ttl,
    version: Number(row.version),
  };
}

const COLUMNS = "device_id, active_agent, locked_at, session_ttl, expires_at, version";
const NEXT_VERSION = "nextval('conversation_states_version_seq')";
// $1 device id, $2 agent, $3 TTL in seconds, $4 version.
//
// Every statement that draws a version first takes a transaction-scoped advisory lock on the
// device, so no two of them for one device interleave. Without it, an insert draws its version
// before it waits on a row another transaction holds; if that one renews (drawing a larger
// version) and a clear then deletes the row, the insert lands with a smaller version than one
// already handed out: a fencing token going backwards across a clear.
const SERIALISED = `(select pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))) as serialised`;
const NEW_LOCK = `select $1::uuid, $2::text, now(), $3::integer, now() + make_interval(secs => $3::integer),
  ${NEXT_VERSION} from ${SERIALISED}`;
// The version is drawn here, after the wait for the row lock, not taken from `excluded`: that one
// was drawn before the wait, so a set that waited behind another would store a smaller token
// than the one it replaced.
const TAKE_OVER = `active_agent = excluded.active_agent, locked_at = excluded.locked_at,
  session_ttl = excluded.session_ttl, expires_at = excluded.expires_at, version = ${NEXT_VERSION}`;
const REPLACE = `active_agent = $2, locked_at = now(), session_ttl = $3::integer,
  expires_at = now() + make_interval(secs => $3::integer), version = ${NEXT_VERSION}`;
const TABLE = "conversation_states";
const ACTIVE = "expires_at > now()";
// Both purge batches, functions of the migrations, re-check the expiry on each row as it is when
// they lock it, so a lock renewed meanwhile stays. Each first takes the purge's advisory lock, so
// that two purges at once take turns batch by batch rather than deadlock. A batch's own
// transaction commits without waiting for its WAL flush: a crash may forget the last batches,
// whose rows are expired, invisible to every read, and purged again by the next run.
/**
 * How many pages a heap-order batch looks through for its rows: it starts small and then takes a
 * quarter more than the last batch needed; at most 32 MiB of heap a batch.
 */
const HEAP_WINDOW_PAGES = { initial: 32, max: 4096 };
const pageOf = (ctid: string) => Number(ctid.slice(1, ctid.indexOf(",")));

/** A statement under its name: node-postgres and Neon prepare it once per connection. */
const named = (name: string, text: string): Statement => ({ name, text });

/**
 * The lock statements, one each, with the condition and the database clock in the `WHERE`.
 * Written as SQL (the table is `lib/schema.ts`'s) and run as named prepared statements straight on
 * the driver: drizzle's query layer costs about 15 µs of CPU per call, a tenth of a request, and
 * loading it about 30 ms of a function's cold start.
 */
const SQL = {
  get: named("lock_get", `select ${COLUMNS} from ${TABLE} where device_id = $1 and ${ACTIVE}`),
  set: named(
    "lock_set",
    `insert into ${TABLE} (${COLUMNS}) ${NEW_LOCK}
    on conflict (device_id) do update set ${TAKE_OVER} returning ${COLUMNS}`,
  ),
  // An expired row is no lock: it may be taken over, a live one may not.
  acquire: named(
    "lock_acquire",
    `insert into ${TABLE} (${COLUMNS}) ${NEW_LOCK}
    on conflict (device_id) do update set ${TAKE_OVER} where ${TABLE}.expires_at <= now() returning ${COLUMNS}`,
  ),
  setIfVersion: named(
    "lock_set_if_version",
    `update ${TABLE} set ${REPLACE} from ${SERIALISED}
    where device_id = $1 and version = $4 and ${ACTIVE} returning ${COLUMNS}`,
  ),
  setIfPresent: named(
    "lock_set_if_present",
    `update ${TABLE} set ${REPLACE} from ${SERIALISED}
    where device_id = $1 and ${ACTIVE} returning ${COLUMNS}`,
  ),
  clear: named("lock_clear", `delete from ${TABLE} where device_id = $1 returning ${ACTIVE} as active`),
  clearIfVersion: named(
    "lock_clear_if_version",
    `delete from ${TABLE} where device_id = $1 and version = $2 and ${ACTIVE} returning version`,
  ),
  clearIfPresent: named(
    "lock_clear_if_present",
    `delete from ${TABLE} where device_id = $1 and ${ACTIVE} returning version`,
  ),
  // $1 the batch size. Heap order when at least max(pages, $1) rows are expired; the count
  // stops there (stepping also over the index entries of rows deleted since the last vacuum).
  purgeOrder: named(
    "lock_purge_order",
    `with size as materialized (
      select pg_relation_size('${TABLE}') / current_setting('block_size')::bigint as pages)
    select (select count(*) from (select from ${TABLE} where expires_at <= now()
                                  limit (select greatest(pages, $1::integer) from size)) as expired)
        >= (select greatest(pages, $1::integer) from size) as heap,
      (select pages from size)::int as pages`,
  ),
  // $1 the previous batch's last row (a ctid, '(0,0)' at first), $2 the end of this batch's window
  // of pages, $3 the batch size: the batch in one statement, a function of the migrations
  // (drizzle/0001_purge_heap_batch.sql) that finds the $3-th expired row in the window and
  // deletes the expired rows up to it, counted without RETURNING: at most $3 rows, but for a row
  // set meanwhile with a TTL shorter than its own wait (the function's comment says how).
  purgeHeapBatch: named(
    "lock_purge_heap_batch",
    "select purged, last_row as last from purge_expired_heap_batch($1::tid, $2::tid, $3::integer)",
  ),
  // $1 the previous batch's cutoff, as text ('-infinity' at first), $2 the batch size: the batch
  // in one statement, a function of the migrations (drizzle/0002_purge_serialised.sql) that finds
  // the cutoff, the expiry of the batch's last row, by the `expires_at` index and deletes the
  // expired rows before it and as many at it as the batch has room for, counted without RETURNING.
  purgeExpiryBatch: named(
    "lock_purge_expiry_batch",
    "select purged, next_expiry as next from purge_expired_expiry_batch($1::timestamptz, $2::integer)",
  ),
  stats: {
    text: `with live as (
      select active_agent as agent, extract(epoch from now() - locked_at)::float8 as age_s
      from ${TABLE} where ${ACTIVE})
    select
      (select count(*)::int from live) as active_locks,
      (select count(*)::int from ${TABLE} where expires_at <= now()) as expired,
      (select coalesce(json_object_agg(agent, n), '{}'::json)::text
         from (select agent, count(*)::int as n from live group by agent) per_agent) as by_agent,
      (select max(age_s) from live) as oldest_s,
      (select avg(age_s)::float8 from live) as average_s`,
  },
} as const satisfies Record<string, Statement>;

/** The statements' texts, for the benchmark's raw-driver floor to issue the very same SQL. */
export const LOCK_SQL = {
  get: SQL.get.text,
  set: SQL.set.text,
  clear: SQL.clear.text,
} as const;
