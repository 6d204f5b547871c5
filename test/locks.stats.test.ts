import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLockStore, type LockStore } from "../lib/locks.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { backdateLock, expireLock } from "./helpers/locks.js";

describe.each(engines)("lock statistics on $name", (engine) => {
  let database: TestDatabase;
  let store: LockStore;

  // Statistics cover the whole table: these tests share one database of their own and run in order.
  beforeAll(async () => {
    database = await engine.open();
    store = createLockStore(database.db);
  });
  afterAll(async () => {
    await database?.close();
  });

  it("reports zeros and no ages for an empty table", async () => {
    expect(await store.stats()).toEqual({
      activeLocks: 0,
      expiredAwaitingPurge: 0,
      byAgent: {},
      oldestLockAgeSeconds: null,
      averageLockAgeSeconds: null,
    });
  });

  it("counts active locks by agent, expired ones apart, and ages by the database clock", async () => {
    const [old, fresh, other, expired] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await store.set(old, { agent: "scheduling", ttlSeconds: 3600 });
    await store.set(fresh, { agent: "scheduling", ttlSeconds: 3600 });
    await store.set(other, { agent: "billing", ttlSeconds: 3600 });
    await store.set(expired, { agent: "billing", ttlSeconds: 3600 });
    await backdateLock(database.db, old, 600);
    await expireLock(database.db, expired);

    const stats = await store.stats();

    expect(stats).toMatchObject({ activeLocks: 3, expiredAwaitingPurge: 1 });
    expect(stats.byAgent).toEqual({ scheduling: 2, billing: 1 });
    // Ages are now() - locked_at: about 600, 0 and 0 seconds, plus the few ms this test takes.
    expect(stats.oldestLockAgeSeconds).toBeGreaterThanOrEqual(600);
    expect(stats.oldestLockAgeSeconds).toBeLessThan(605);
    expect(stats.averageLockAgeSeconds).toBeGreaterThanOrEqual(200);
    expect(stats.averageLockAgeSeconds).toBeLessThan(205);
  });

  it("stops counting a purged lock", async () => {
    const expired = randomUUID();
    await store.set(expired, { agent: "billing", ttlSeconds: 3600 });
    await expireLock(database.db, expired);
    const before = await store.stats();
    expect(before.expiredAwaitingPurge).toBeGreaterThan(0);

    await store.purgeExpired({ batchSize: 100, timeBudgetMs: 5000 });

    expect(await store.stats()).toMatchObject({
      activeLocks: before.activeLocks,
      expiredAwaitingPurge: 0,
    });
  });
});
