import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createLockStore, type LockStore } from "../lib/locks.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { databaseNow, expireLock } from "./helpers/locks.js";

const TWO_DAYS_MS = 2 * 24 * 3600 * 1000;

/**
 * Expiry is judged by the database clock, never the process clock: these tests move the process
 * clock (a fake `Date`) two days away and expect the lock to behave as the database's `now()` says.
 *
 * What this shows depends on the engine. pg and neon talk to a server with its own clock, so there
 * a store that compared against `Date.now()` would fail both tests. PGlite runs inside this process
 * and its `now()` reads the same (faked) `Date`: the two clocks move together, and on PGlite the
 * tests only show that a shifted process clock breaks nothing. The `separate clocks` assertions
 * check which case applies, so neither can pass by accident.
 */
describe.each(engines)("expiry by the database clock on $name", (engine) => {
  const separateClocks = engine.name !== "pglite";
  let database: TestDatabase;
  let store: LockStore;

  beforeAll(async () => {
    database = await engine.open();
    store = createLockStore(database.db);
  });
  afterAll(async () => {
    await database?.close();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function shiftProcessClock(offsetMs: number): void {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + offsetMs);
  }

  async function expectClocksApart(offsetMs: number): Promise<void> {
    const apartMs = Date.now() - (await databaseNow(database.db)).getTime();
    if (separateClocks) expect(Math.abs(apartMs - offsetMs)).toBeLessThan(60_000);
    else expect(Math.abs(apartMs)).toBeLessThan(60_000);
  }

  it("keeps a one-minute lock active while the process clock runs two days ahead", async () => {
    shiftProcessClock(TWO_DAYS_MS);
    await expectClocksApart(TWO_DAYS_MS);
    const deviceId = randomUUID();

    const result = await store.set(deviceId, { agent: "scheduling", ttlSeconds: 60 });

    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const now = await databaseNow(database.db);
    expect(Math.abs(result.lock.lockedAt.getTime() - now.getTime())).toBeLessThan(5_000);
    expect(await store.get(deviceId)).toEqual(result.lock);
    expect(await store.set(deviceId, { agent: "billing", condition: { kind: "ifAbsent" } })).toMatchObject({
      ok: false,
      reason: "held",
    });
  });

  it("treats a lock that expired a second ago as absent while the process clock runs two days behind", async () => {
    shiftProcessClock(-TWO_DAYS_MS);
    await expectClocksApart(-TWO_DAYS_MS);
    const deviceId = randomUUID();
    await store.set(deviceId, { agent: "scheduling", ttlSeconds: 3600 });
    await expireLock(database.db, deviceId, 1);

    expect(await store.get(deviceId)).toBeNull();
    const acquired = await store.set(deviceId, { agent: "billing", condition: { kind: "ifAbsent" } });
    expect(acquired).toMatchObject({ ok: true, lock: { activeAgent: "billing" } });
  });
});
