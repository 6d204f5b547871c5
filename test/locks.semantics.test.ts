import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError } from "../lib/errors.js";
import { createLockStore, type Lock, type LockStore } from "../lib/locks.js";
import { conversationStates } from "../lib/schema.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { databaseNow, expireLock } from "./helpers/locks.js";

describe.each(engines)("lock semantics on $name", (engine) => {
  let database: TestDatabase;
  let store: LockStore;

  beforeAll(async () => {
    database = await engine.open();
    store = createLockStore(database.db, { defaultTtlSeconds: 900, maxTtlSeconds: 7200 });
  });
  afterAll(async () => {
    await database?.close();
  });

  async function setLock(deviceId: string, agent = "scheduling", ttlSeconds = 600): Promise<Lock> {
    const result = await store.set(deviceId, { agent, ttlSeconds });
    if (!result.ok) throw new Error(`An unconditional set was refused: ${result.reason}`);
    return result.lock;
  }

  async function rowExists(deviceId: string): Promise<boolean> {
    const rows = await database.db
      .select({ deviceId: conversationStates.deviceId })
      .from(conversationStates)
      .where(eq(conversationStates.deviceId, deviceId));
    return rows.length === 1;
  }

  describe("get, set and clear", () => {
    it("reads no lock for a device that never had one", async () => {
      expect(await store.get(randomUUID())).toBeNull();
    });

    it("returns a set lock with every field, times by the database clock", async () => {
      const deviceId = randomUUID();
      const before = await databaseNow(database.db);
      const lock = await setLock(deviceId, "scheduling", 3600);
      const after = await databaseNow(database.db);

      expect(lock).toEqual({
        deviceId,
        activeAgent: "scheduling",
        lockedAt: expect.any(Date),
        expiresAt: expect.any(Date),
        ttlSeconds: 3600,
        version: expect.any(Number),
      });
      expect(lock.lockedAt.getTime()).toBeGreaterThanOrEqual(before.getTime());
      expect(lock.lockedAt.getTime()).toBeLessThanOrEqual(after.getTime());
      expect(lock.expiresAt.getTime() - lock.lockedAt.getTime()).toBe(3600 * 1000);
      expect(Number.isSafeInteger(lock.version) && lock.version > 0).toBe(true);
      expect(await store.get(deviceId)).toEqual(lock);
    });

    it("stores and returns an upper-case device id in lower case", async () => {
      const deviceId = randomUUID();
      const lock = await setLock(deviceId.toUpperCase());

      expect(lock.deviceId).toBe(deviceId);
      expect(await store.get(deviceId.toUpperCase())).toEqual(lock);
      expect(await store.get(deviceId)).toEqual(lock);
    });

    it("uses the store's default TTL when none is given", async () => {
      const result = await store.set(randomUUID(), { agent: "scheduling" });

      expect(result.ok && result.lock.ttlSeconds).toBe(900);
      expect(result.ok && result.lock.expiresAt.getTime() - result.lock.lockedAt.getTime()).toBe(900_000);
    });

    it("overwrites another agent's lock without a condition, under a larger version", async () => {
      const deviceId = randomUUID();
      const first = await setLock(deviceId, "scheduling");
      const second = await setLock(deviceId, "billing", 60);

      expect(second).toMatchObject({ deviceId, activeAgent: "billing", ttlSeconds: 60 });
      expect(second.version).toBeGreaterThan(first.version);
      expect(await store.get(deviceId)).toEqual(second);
    });

    it("renews the same agent's lock from the database's now, under a larger version", async () => {
      const deviceId = randomUUID();
      const first = await setLock(deviceId, "scheduling", 60);
      const renewed = await setLock(deviceId, "scheduling", 7200);

      expect(renewed.lockedAt.getTime()).toBeGreaterThanOrEqual(first.lockedAt.getTime());
      expect(renewed.expiresAt.getTime() - renewed.lockedAt.getTime()).toBe(7200 * 1000);
      expect(renewed.version).toBeGreaterThan(first.version);
    });

    it("clears a lock: the row is deleted, and clearing again reports nothing cleared", async () => {
      const deviceId = randomUUID();
      await setLock(deviceId);

      expect(await store.clear(deviceId)).toEqual({ ok: true, cleared: true });
      expect(await store.get(deviceId)).toBeNull();
      expect(await rowExists(deviceId)).toBe(false);
      expect(await store.clear(deviceId)).toEqual({ ok: true, cleared: false });
    });

    it("leaves other devices' locks alone", async () => {
      const [mine, other] = [randomUUID(), randomUUID()];
      await setLock(mine);
      const otherLock = await setLock(other, "billing");

      await store.clear(mine);

      expect(await store.get(other)).toEqual(otherLock);
    });
  });

  describe("expiry", () => {
    it("reads an expired lock as absent while its row is still there", async () => {
      const deviceId = randomUUID();
      await setLock(deviceId);
      expect(await expireLock(database.db, deviceId)).toBe(true);

      expect(await rowExists(deviceId)).toBe(true);
      expect(await store.get(deviceId)).toBeNull();
    });

    it("lets an acquire take over an expired lock before any purge", async () => {
      const deviceId = randomUUID();
      const old = await setLock(deviceId, "scheduling");
      await expireLock(database.db, deviceId);

      const result = await store.set(deviceId, {
        agent: "billing",
        ttlSeconds: 60,
        condition: { kind: "ifAbsent" },
      });

      expect(result.ok).toBe(true);
      if (!result.ok) return;
      expect(result.lock).toMatchObject({ deviceId, activeAgent: "billing", ttlSeconds: 60 });
      expect(result.lock.version).toBeGreaterThan(old.version);
      expect(result.lock.expiresAt.getTime()).toBeGreaterThan((await databaseNow(database.db)).getTime());
    });

    it("does not clear an expired lock as if it were active, but deletes its row", async () => {
      const deviceId = randomUUID();
      await setLock(deviceId);
      await expireLock(database.db, deviceId);

      expect(await store.clear(deviceId)).toEqual({ ok: true, cleared: false });
      expect(await rowExists(deviceId)).toBe(false);
    });

    it("refuses conditions that need an active lock once it has expired", async () => {
      const deviceId = randomUUID();
      const old = await setLock(deviceId);
      await expireLock(database.db, deviceId);

      const expected = { ok: false, current: null };
      const ifVersion = { kind: "ifVersion", version: old.version } as const;
      expect(await store.set(deviceId, { agent: "scheduling", condition: ifVersion })).toEqual({
        ...expected,
        reason: "version_mismatch",
      });
      expect(await store.set(deviceId, { agent: "scheduling", condition: { kind: "ifPresent" } })).toEqual({
        ...expected,
        reason: "absent",
      });
      expect(await store.clear(deviceId, ifVersion)).toEqual({ ...expected, reason: "version_mismatch" });
      expect(await store.clear(deviceId, { kind: "ifPresent" })).toEqual({ ...expected, reason: "absent" });
    });
  });

  describe("conditions", () => {
    it("acquires a free device with ifAbsent", async () => {
      const deviceId = randomUUID();
      const result = await store.set(deviceId, { agent: "scheduling", condition: { kind: "ifAbsent" } });

      expect(result).toMatchObject({ ok: true, lock: { deviceId, activeAgent: "scheduling" } });
      expect(result.ok && (await store.get(deviceId))).toEqual(result.ok && result.lock);
    });

    it("refuses ifAbsent while a lock is held, reporting the holder, and changes nothing", async () => {
      const deviceId = randomUUID();
      const held = await setLock(deviceId, "scheduling");

      const result = await store.set(deviceId, { agent: "billing", condition: { kind: "ifAbsent" } });

      expect(result).toEqual({ ok: false, reason: "held", current: held });
      expect(await store.get(deviceId)).toEqual(held);
    });

    it("sets with ifVersion when the version is current, and refuses the stale one afterwards", async () => {
      const deviceId = randomUUID();
      const first = await setLock(deviceId, "scheduling");

      const replaced = await store.set(deviceId, {
        agent: "billing",
        ttlSeconds: 120,
        condition: { kind: "ifVersion", version: first.version },
      });
      expect(replaced).toMatchObject({ ok: true, lock: { activeAgent: "billing", ttlSeconds: 120 } });
      if (!replaced.ok) return;
      expect(replaced.lock.version).toBeGreaterThan(first.version);

      const stale = await store.set(deviceId, {
        agent: "scheduling",
        condition: { kind: "ifVersion", version: first.version },
      });
      expect(stale).toEqual({ ok: false, reason: "version_mismatch", current: replaced.lock });
      expect(await store.get(deviceId)).toEqual(replaced.lock);
    });

    it("refuses ifVersion on a device without a lock", async () => {
      const result = await store.set(randomUUID(), {
        agent: "scheduling",
        condition: { kind: "ifVersion", version: 1 },
      });

      expect(result).toEqual({ ok: false, reason: "version_mismatch", current: null });
    });

    it("clears with ifVersion only when the version is current", async () => {
      const deviceId = randomUUID();
      const first = await setLock(deviceId);
      const second = await setLock(deviceId);

      const stale = await store.clear(deviceId, { kind: "ifVersion", version: first.version });
      expect(stale).toEqual({ ok: false, reason: "version_mismatch", current: second });
      expect(await store.get(deviceId)).toEqual(second);

      const current = await store.clear(deviceId, { kind: "ifVersion", version: second.version });
      expect(current).toEqual({ ok: true, cleared: true });
      expect(await store.get(deviceId)).toBeNull();
    });

    it("sets with ifPresent only when a lock is active", async () => {
      const deviceId = randomUUID();

      const absent = await store.set(deviceId, { agent: "scheduling", condition: { kind: "ifPresent" } });
      expect(absent).toEqual({ ok: false, reason: "absent", current: null });
      expect(await store.get(deviceId)).toBeNull();

      const held = await setLock(deviceId, "scheduling");
      const present = await store.set(deviceId, { agent: "billing", condition: { kind: "ifPresent" } });
      expect(present).toMatchObject({ ok: true, lock: { activeAgent: "billing" } });
      expect(present.ok && present.lock.version).toBeGreaterThan(held.version);
    });

    it("clears with ifPresent only when a lock is active", async () => {
      const deviceId = randomUUID();

      expect(await store.clear(deviceId, { kind: "ifPresent" })).toEqual({
        ok: false,
        reason: "absent",
        current: null,
      });
      await setLock(deviceId);
      expect(await store.clear(deviceId, { kind: "ifPresent" })).toEqual({ ok: true, cleared: true });
      expect(await store.get(deviceId)).toBeNull();
    });

    it("rejects ifAbsent on clear as an invalid precondition", async () => {
      const deviceId = randomUUID();
      const held = await setLock(deviceId);

      const error = await store.clear(deviceId, { kind: "ifAbsent" }).catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).code).toBe("invalid_precondition");
      expect(await store.get(deviceId)).toEqual(held);
    });
  });

  describe("versions", () => {
    it("only grow, across sets, clears, expiry and purge, on one device and between devices", async () => {
      const [device, other] = [randomUUID(), randomUUID()];
      const versions: number[] = [];
      const record = (lock: Lock) => versions.push(lock.version);

      record(await setLock(device));
      record(await setLock(other));
      record(await setLock(device));
      await store.clear(device);
      record(await setLock(device));
      await expireLock(database.db, device);
      record(await setLock(other));
      await store.purgeExpired({ batchSize: 1000, timeBudgetMs: 5000 });
      expect(await rowExists(device)).toBe(false);
      const acquired = await store.set(device, { agent: "scheduling", condition: { kind: "ifAbsent" } });
      if (!acquired.ok) throw new Error("The acquire after purge was refused.");
      record(acquired.lock);

      expect(versions).toHaveLength(6);
      expect(new Set(versions).size).toBe(versions.length);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    });
  });
});
