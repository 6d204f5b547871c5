import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLockStore, type LockStore } from "../lib/locks.js";
import { conversationStates } from "../lib/schema.js";
import { engines, networkEngines, type TestDatabase } from "./helpers/engines.js";
import { expireLock, insertExpiredLocks } from "./helpers/locks.js";

const NO_BUDGET_LIMIT = { timeBudgetMs: 60_000 };

/** The most expired rows a test below inserts. */
const MOST_EXPIRED = 600;

/**
 * A purge walks the heap when at least as many rows are expired as the table has pages (and a
 * batch), and reads the `expires_at` index otherwise. The same tests run on a small table, where
 * every test with more than a batch of expired rows walks the heap, and beside enough live rows
 * that none does.
 */
const ORDERS = [
  { order: "heap order", liveRows: 0, pages: (n: number) => n <= 10 },
  { order: "expiry order", liveRows: 80_000, pages: (n: number) => n > MOST_EXPIRED },
];

describe.each(
  engines.flatMap((engine) => ORDERS.map((order) => ({ ...order, engine, name: engine.name }))),
)("purging expired locks in $order on $name", ({ engine, liveRows, pages }) => {
  let database: TestDatabase;
  let store: LockStore;

  async function expiredRowCount(): Promise<number> {
    const result = (await database.db.execute(
      sql`select count(*)::int as n from ${conversationStates} where ${conversationStates.expiresAt} <= now()`,
    )) as { rows: { n: number }[] };
    return Number(result.rows[0]?.n);
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

    const result = await store.purgeExpired({ batchSize: 10, ...NO_BUDGET_LIMIT });

    expect(result).toMatchObject({ purged: 25, batches: 3, complete: true });
    expect(await expiredRowCount()).toBe(0);
  });

  it("runs one more, empty, batch when the rows fill the last batch exactly", async () => {
    await insertExpiredLocks(database.db, 20);

    const result = await store.purgeExpired({ batchSize: 10, ...NO_BUDGET_LIMIT });

    expect(result).toMatchObject({ purged: 20, batches: 3, complete: true });
  });

  it("stops after the batch that spends the time budget and reports it incomplete", async () => {
    await insertExpiredLocks(database.db, 30);

    const partial = await store.purgeExpired({ batchSize: 10, timeBudgetMs: 0 });

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

    const results = await Promise.all(
      Array.from({ length: 4 }, () => store.purgeExpired({ batchSize: 25, ...NO_BUDGET_LIMIT })),
    );

    expect(results.reduce((sum, result) => sum + result.purged, 0)).toBe(rows);
    expect(await expiredRowCount()).toBe(0);
    expect(await store.get(live)).not.toBeNull();
  });
});

describe.each(networkEngines)("purging while a writer holds an expired row on $name", (engine) => {
  // Two expired rows on one page: a batch of 1 walks the heap, a batch of 100 reads the index.
  it.each([
    { order: "heap order", batchSize: 1 },
    { order: "expiry order", batchSize: 100 },
  ])("waits for the renewal in flight and keeps the lock it renewed, in $order", async ({ batchSize }) => {
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

      const purge = store.purgeExpired({ batchSize, ...NO_BUDGET_LIMIT });
      // The purge's delete waits for the row the open transaction holds.
      const waitingOnLock = async () => {
        const { rows } = await writer.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
        );
        return Number(rows[0]?.n) > 0;
      };
      const deadline = Date.now() + 10_000;
      while (!(await waitingOnLock())) {
        if (Date.now() > deadline) throw new Error("the purge never waited on the held row");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await writer.query("commit");

      expect(await purge).toMatchObject({ purged: 1, complete: true });
      expect(await store.get(renewed)).toMatchObject({ deviceId: renewed, activeAgent: "scheduling" });
      expect(await store.get(expired)).toBeNull();
    } finally {
      await writer.end().catch(() => {});
      await database.close();
    }
  });
});
