import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { clientOf, type Database, queryOf } from "../lib/db.js";
import { errorChain } from "../lib/errors.js";
import { createLockStore, type LockStore, type PurgeResult } from "../lib/locks.js";
import { conversationStates } from "../lib/schema.js";
import { engines, networkEngines, type TestDatabase } from "./helpers/engines.js";
import { expireLock, insertExpiredLocks } from "./helpers/locks.js";

const NO_BUDGET_LIMIT = { timeBudgetMs: 60_000 };

/** The most expired rows a test below inserts. */
const MOST_EXPIRED = 600;

const HEAP_BATCH = "purge_expired_heap_batch(";

/**
 * The database `db` as the lib sees it (the same driver client, so the same connections), the
 * texts of the statements run through it, and whether one of them was a heap-order batch.
 */
function recordStatements(db: Database): { db: Database; texts: string[]; walkedHeap(): boolean } {
  const client = clientOf(db) as unknown as { query: (...args: unknown[]) => Promise<unknown> };
  const texts: string[] = [];
  const query = (first: unknown, ...rest: unknown[]) => {
    texts.push(typeof first === "string" ? first : (first as { text: string }).text);
    return client.query(first, ...rest);
  };
  const recorded = "totalCount" in client ? { totalCount: 0, query } : { query };
  return {
    db: recorded as unknown as Database,
    texts,
    walkedHeap: () => texts.some((text) => text.includes(HEAP_BATCH)),
  };
}

/** Resolves once `count` other sessions of the database wait on a lock; throws after 10 s. */
async function untilWaitingOnLocks(client: pg.Client, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
       where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
    );
    if (Number(rows[0]?.n) >= count) return;
    if (Date.now() > deadline) throw new Error(`fewer than ${count} sessions ever waited on a lock`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A purge walks the heap when at least as many rows are expired as the table has pages (and a
 * batch), and reads the `expires_at` index otherwise. The same tests run on a small table, where
 * every test with more than a batch of expired rows walks the heap, and beside enough live rows
 * that none does.
 */
const ORDERS = [
  { order: "heap order", liveRows: 0, pages: (n: number) => n <= 10 },
  { order: "expiry order", liveRows: 80_000, pages: (n: number) => n > MOST_EXPIRED },
] as const;

describe.each(
  engines.flatMap((engine) => ORDERS.map((order) => ({ ...order, engine, name: engine.name }))),
)("purging expired locks in $order on $name", ({ engine, order, liveRows, pages }) => {
  let database: TestDatabase;
  let store: LockStore;

  async function expiredRowCount(): Promise<number> {
    const result = (await database.db.execute(
      sql`select count(*)::int as n from ${conversationStates} where ${conversationStates.expiresAt} <= now()`,
    )) as { rows: { n: number }[] };
    return Number(result.rows[0]?.n);
  }

  /** Purges through a store of its own, and says in which order it went. */
  async function purge(limits: { batchSize: number; timeBudgetMs: number }) {
    const { db, walkedHeap } = recordStatements(database.db);
    const result: PurgeResult = await createLockStore(db).purgeExpired(limits);
    return { result, order: walkedHeap() ? "heap order" : "expiry order" };
  }

  beforeAll(async () => {
    database = await engine.open({ poolMax: 10 });
    store = createLockStore(database.db);
    await database.db.execute(sql`
      insert into ${conversationStates} (device_id, active_agent, locked_at, session_ttl, expires_at)
      select gen_random_uuid(), 'live-agent', now(), 3600, now() + interval '1 hour'
      from generate_series(1, ${liveRows}::integer)`);
    const result = (await database.db.execute(
      sql`select (pg_relation_size('conversation_states') / current_setting('block_size')::int)::int as n`,
    )) as { rows: { n: number }[] };
    expect(pages(Number(result.rows[0]?.n))).toBe(true);
  });
  afterAll(async () => {
    await database?.close();
  });
  // Purge works on the whole table: the tests of this file run one after another on their own
  // database, and each starts without expired rows (live rows of earlier tests may stay).
  beforeEach(async () => {
    await store.purgeExpired({ batchSize: 10_000, ...NO_BUDGET_LIMIT });
    expect(await expiredRowCount()).toBe(0);
  });

  it("deletes expired locks and keeps live ones", async () => {
    const [live, expired] = [randomUUID(), randomUUID()];
    const liveSet = await store.set(live, { agent: "scheduling", ttlSeconds: 60 });
    await store.set(expired, { agent: "scheduling", ttlSeconds: 60 });
    await expireLock(database.db, expired);

    const result = await store.purgeExpired({ batchSize: 100, ...NO_BUDGET_LIMIT });

    expect(result).toEqual({ purged: 1, batches: 1, durationMs: expect.any(Number), complete: true });
    expect(await expiredRowCount()).toBe(0);
    expect(await store.get(live)).toEqual(liveSet.ok && liveSet.lock);
  });

  it("deletes nothing on a second run", async () => {
    await insertExpiredLocks(database.db, 5);

    const first = await store.purgeExpired({ batchSize: 100, ...NO_BUDGET_LIMIT });
    const second = await store.purgeExpired({ batchSize: 100, ...NO_BUDGET_LIMIT });

    expect(first).toMatchObject({ purged: 5, complete: true });
    expect(second).toMatchObject({ purged: 0, batches: 1, complete: true });
  });

  it("deletes in batches of the given size until a batch comes back short", async () => {
    await insertExpiredLocks(database.db, 25);

    const { result, order: used } = await purge({ batchSize: 10, ...NO_BUDGET_LIMIT });

    expect(used).toBe(order);
    expect(result).toMatchObject({ purged: 25, batches: 3, complete: true });
    expect(await expiredRowCount()).toBe(0);
  });

  it("runs one more, empty, batch when the rows fill the last batch exactly", async () => {
    await insertExpiredLocks(database.db, 20);

    const { result, order: used } = await purge({ batchSize: 10, ...NO_BUDGET_LIMIT });

    expect(used).toBe(order);
    expect(result).toMatchObject({ purged: 20, batches: 3, complete: true });
  });

  it("stops after the batch that spends the time budget and reports it incomplete", async () => {
    await insertExpiredLocks(database.db, 30);

    const { result: partial, order: used } = await purge({ batchSize: 10, timeBudgetMs: 0 });

    expect(used).toBe(order);
    expect(partial).toMatchObject({ purged: 10, batches: 1, complete: false });
    expect(await expiredRowCount()).toBe(20);
    const rest = await store.purgeExpired({ batchSize: 10, ...NO_BUDGET_LIMIT });
    expect(rest).toMatchObject({ purged: 20, complete: true });
  });

  it("lets purges run at once without failing or counting a row twice", async () => {
    const rows = MOST_EXPIRED;
    await insertExpiredLocks(database.db, rows);
    const live = randomUUID();
    await store.set(live, { agent: "scheduling", ttlSeconds: 60 });

    const runs = await Promise.all(
      Array.from({ length: 4 }, () => purge({ batchSize: 25, ...NO_BUDGET_LIMIT })),
    );

    // A purge that starts after another deleted rows may find too few for heap order.
    expect(runs.map((run) => run.order)).toContain(order);
    expect(runs.reduce((sum, run) => sum + run.result.purged, 0)).toBe(rows);
    expect(await expiredRowCount()).toBe(0);
    expect(await store.get(live)).not.toBeNull();
  });
});

describe.each(engines)("purging in heap order through more pages than a window on $name", (engine) => {
  it("bounds and deletes each batch by TID range scans, also as generic plans", async () => {
    const database = await engine.open();
    try {
      await insertExpiredLocks(database.db, 6000);
      await database.db.execute(sql`analyze ${conversationStates}`);
      // The batch function's own statements, its arguments as parameters, planned as it runs them.
      const source = (await database.db.execute(
        sql`select prosrc from pg_proc where proname = 'purge_expired_heap_batch'`,
      )) as unknown as { rows: { prosrc: string }[] };
      const statements = [
        ...(source.rows[0]?.prosrc ?? "").matchAll(/^\s*((?:SELECT ctid|DELETE)[^;]*);/gm),
      ].map(([, statement]) =>
        (statement ?? "")
          .replace(" INTO bound", "")
          .replace(/\bafter_row\b/g, "$1")
          .replace(/\b(window_end|bound)\b/g, "$2")
          .replace(/\bbatch_size\b/g, "$3"),
      );
      expect(statements).toHaveLength(3);
      for (const statement of statements) {
        const plan = await database.db.transaction(async (tx) => {
          await tx.execute(sql`set local plan_cache_mode = force_generic_plan`);
          await tx.execute(sql.raw(`prepare purge_batch_plan(tid, tid, integer) as ${statement}`));
          const result = (await tx.execute(
            sql`explain execute purge_batch_plan('(0,0)', '(32,0)', 1000)`,
          )) as unknown as { rows: Record<string, string>[] };
          await tx.execute(sql`deallocate purge_batch_plan`);
          return result.rows.map((row) => Object.values(row)[0]).join("\n");
        });
        expect(plan, statement).toContain("Tid Range Scan");
        expect(plan, statement).not.toMatch(/Index|Seq Scan|Sort/);
      }
    } finally {
      await database.close();
    }
  });

  it("walks every page, past a stretch of live rows longer than a window, in about as many batches as rows need", async () => {
    const database = await engine.open();
    try {
      // 3,000 expired rows, then 6,000 live ones (about 65 pages), then 1,000 expired again.
      await database.db.execute(sql`
        insert into ${conversationStates} (device_id, active_agent, locked_at, session_ttl, expires_at)
        select gen_random_uuid(), case when expired then 'expired-agent' else 'live-agent' end,
          now() - interval '61 seconds', 3600,
          case when expired then now() - interval '60 seconds' else now() + interval '1 hour' end
        from generate_series(1, 10000) as i, lateral (select i <= 3000 or i > 9000 as expired) as kind`);
      const { db, walkedHeap } = recordStatements(database.db);

      const result = await createLockStore(db).purgeExpired({ batchSize: 500, ...NO_BUDGET_LIMIT });

      expect(walkedHeap()).toBe(true);
      expect(result).toMatchObject({ purged: 4000, complete: true });
      // 8 full batches, and a few windows that found fewer than 500 rows.
      expect(result.batches).toBeGreaterThanOrEqual(8);
      expect(result.batches).toBeLessThanOrEqual(14);
      const counts = (await database.db.execute(
        sql`select count(*) filter (where ${conversationStates.expiresAt} <= now())::int as expired,
              count(*) filter (where ${conversationStates.activeAgent} = 'live-agent')::int as live
            from ${conversationStates}`,
      )) as { rows: { expired: number; live: number }[] };
      expect(counts.rows[0]).toEqual({ expired: 0, live: 6000 });
    } finally {
      await database.close();
    }
  });
});

describe.each(networkEngines)("purging while a writer holds an expired row on $name", (engine) => {
  // Two expired rows on one page: a batch of 1 walks the heap, a batch of 100 reads the index.
  it.each([
    { order: "heap order", batchSize: 1 },
    { order: "expiry order", batchSize: 100 },
  ])("waits for the renewal in flight and keeps the lock it renewed, in $order", async ({
    order,
    batchSize,
  }) => {
    const database = await engine.open();
    const writer = new pg.Client({ connectionString: database.url ?? "" });
    try {
      const store = createLockStore(database.db);
      const [renewed, expired] = [randomUUID(), randomUUID()];
      for (const deviceId of [renewed, expired]) {
        await store.set(deviceId, { agent: "scheduling", ttlSeconds: 60 });
        await expireLock(database.db, deviceId);
      }
      await writer.connect();
      await writer.query("begin");
      await writer.query(
        "update conversation_states set locked_at = now(), expires_at = now() + interval '1 hour' where device_id = $1",
        [renewed],
      );

      const recorded = recordStatements(database.db);
      const purge = createLockStore(recorded.db).purgeExpired({ batchSize, ...NO_BUDGET_LIMIT });
      // The purge's delete waits for the row the open transaction holds.
      await untilWaitingOnLocks(writer, 1);
      await writer.query("commit");

      expect(await purge).toMatchObject({ purged: 1, complete: true });
      expect(recorded.walkedHeap()).toBe(order === "heap order");
      expect(await store.get(renewed)).toMatchObject({ deviceId: renewed, activeAgent: "scheduling" });
      expect(await store.get(expired)).toBeNull();
    } finally {
      await writer.end().catch(() => {});
      await database.close();
    }
  });
});

describe.each(networkEngines)("two expiry-order purges at once beside a writer on $name", (engine) => {
  it("take turns batch by batch: neither deadlocks, every expired row goes once, a renewed lock stays", async () => {
    const database = await engine.open();
    const holder = new pg.Client({ connectionString: database.url ?? "" });
    // Apart from the holder, whose transaction would keep seeing its first view of the activity.
    const observer = new pg.Client({ connectionString: database.url ?? "" });
    await holder.connect();
    await observer.connect();
    try {
      const store = createLockStore(database.db);
      // Live rows enough that five expired ones are fewer than the table's pages: expiry order.
      await database.db.execute(sql`
        insert into ${conversationStates} (device_id, active_agent, locked_at, session_ttl, expires_at, version)
        select gen_random_uuid(), 'live', now(), 86400, now() + interval '1 day',
          nextval('conversation_states_version_seq')
        from generate_series(1, 2000)`);
      // In this heap order, expired in this order: r0, z, w, y, v (v most recently).
      const [v, y, z, w, r0] = Array.from({ length: 5 }, () => randomUUID());
      const ids = [v, y, z, w, r0] as string[];
      await holder.query(
        `insert into conversation_states (device_id, active_agent, locked_at, session_ttl, expires_at, version)
         select id::uuid, 'old', now() - interval '1 hour', 60, now() - make_interval(mins => age),
           nextval('conversation_states_version_seq')
         from unnest($1::text[], $2::int[]) with ordinality as t(id, age, n)
         order by n`,
        [ids, [10, 20, 40, 30, 50]],
      );
      // A writer in flight holds w: purge A's first batch (cutoff y) locks z and waits for it.
      await holder.query("begin");
      await holder.query("select 1 from conversation_states where device_id = $1 for update", [w]);
      const first = store.purgeExpired({ batchSize: 4, ...NO_BUDGET_LIMIT });
      await untilWaitingOnLocks(observer, 1);
      // r0 is renewed meanwhile, so purge B's first cutoff is v: without turns, B would lock y
      // and wait for z, while A, once w is free, would wait for y, its cutoff's row.
      expect((await store.set(r0 as string, { agent: "scheduling", ttlSeconds: 60 })).ok).toBe(true);
      const second = store.purgeExpired({ batchSize: 4, ...NO_BUDGET_LIMIT });
      await untilWaitingOnLocks(observer, 2);
      await holder.query("rollback");

      const outcomes = await Promise.allSettled([first, second]);
      expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled"]);
      const purged = outcomes.reduce(
        (sum, outcome) => sum + (outcome.status === "fulfilled" ? outcome.value.purged : 0),
        0,
      );
      expect(purged).toBe(4);
      const { rows } = await observer.query<{ id: string }>(
        "select device_id as id from conversation_states where device_id = any($1::uuid[])",
        [ids],
      );
      expect(rows.map((row) => row.id)).toEqual([r0]);
      expect((await store.get(r0 as string))?.activeAgent).toBe("scheduling");
    } finally {
      await holder.end();
      await observer.end();
      await database.close();
    }
  });
});

describe.each(engines)("an expiry-order purge in a session whose DateStyle is not ISO on $name", (engine) => {
  it("reads each batch's cutoff back exactly and purges every expired row", async () => {
    // One connection, so that the session's settings are those of every statement.
    const database = await engine.open({ poolMax: 1 });
    try {
      await database.db.execute(sql`set datestyle = 'SQL, DMY'`);
      // IST: India's +05:30 to this zone, Israel's +02 to Postgres 17 and older reading it back.
      await database.db.execute(sql`set timezone = 'Asia/Kolkata'`);
      await database.db.execute(sql`
        insert into ${conversationStates} (device_id, active_agent, locked_at, session_ttl, expires_at, version)
        select gen_random_uuid(), 'live', now(), 86400, now() + interval '1 day',
          nextval('conversation_states_version_seq')
        from generate_series(1, 2000)`);
      // Twenty expired locks, half an hour apart over ten hours: fewer than the pages, expiry order.
      await database.db.execute(sql`
        insert into ${conversationStates} (device_id, active_agent, locked_at, session_ttl, expires_at, version)
        select gen_random_uuid(), 'old', now() - interval '11 hours', 60,
          now() - make_interval(mins => 30 * i), nextval('conversation_states_version_seq')
        from generate_series(1, 20) as i`);
      const recorded = recordStatements(database.db);

      const result = await createLockStore(recorded.db).purgeExpired({ batchSize: 3, ...NO_BUDGET_LIMIT });
      expect(recorded.walkedHeap()).toBe(false);
      expect(result).toMatchObject({ purged: 20, complete: true });
      const left = await queryOf(database.db)({
        text: "select count(*)::int as n from conversation_states where expires_at <= now()",
      });
      expect(left).toEqual([{ n: 0 }]);
    } finally {
      await database.close();
    }
  });
});

describe.each(engines)("versions at the end of what JavaScript reads exactly on $name", (engine) => {
  it("hands out 2^53 - 1 exactly, then fails rather than hand out a version it cannot read", async () => {
    const database = await engine.open();
    try {
      await database.db.execute(
        sql`select setval('conversation_states_version_seq', ${Number.MAX_SAFE_INTEGER - 1})`,
      );
      const store = createLockStore(database.db);
      const take = (deviceId: string) =>
        store.set(deviceId, { agent: "billing", condition: { kind: "ifAbsent" } });
      const last = await take(randomUUID());
      expect(last.ok && last.lock.version).toBe(Number.MAX_SAFE_INTEGER);
      const past = await take(randomUUID()).catch((error: unknown) => error);
      // nextval: "reached maximum value of sequence" (SQLSTATE 2200H).
      expect([...errorChain(past)].some((error) => (error as { code?: unknown }).code === "2200H")).toBe(
        true,
      );
    } finally {
      await database.close();
    }
  });
});
