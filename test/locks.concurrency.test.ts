import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLockStore, type LockStore, type SetResult } from "../lib/locks.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { expireLock } from "./helpers/locks.js";

// On pg and neon the calls below run on up to 10 pooled connections at once, so the server really
// interleaves them. PGlite runs one statement at a time; there the cases still catch any outcome
// decided in JavaScript between two statements, since the calls interleave at every await.
const CONTENDERS = 50;

function winnersAndLosers(results: SetResult[]) {
  const winners = results.flatMap((result) => (result.ok ? [result.lock] : []));
  const losers = results.flatMap((result) => (result.ok ? [] : [result]));
  return { winners, losers };
}

describe.each(engines)("concurrent lock operations on $name", (engine) => {
  let database: TestDatabase;
  let store: LockStore;

  beforeAll(async () => {
    database = await engine.open({ poolMax: 10 });
    store = createLockStore(database.db);
  });
  afterAll(async () => {
    await database?.close();
  });

  it(`lets exactly one of ${CONTENDERS} ifAbsent acquires win; the others see the winner's lock`, async () => {
    const deviceId = randomUUID();

    const results = await Promise.all(
      Array.from({ length: CONTENDERS }, (_, index) =>
        store.set(deviceId, { agent: `agent-${index}`, ttlSeconds: 600, condition: { kind: "ifAbsent" } }),
      ),
    );

    const { winners, losers } = winnersAndLosers(results);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(CONTENDERS - 1);
    for (const loser of losers) expect(loser).toEqual({ ok: false, reason: "held", current: winners[0] });
    expect(await store.get(deviceId)).toEqual(winners[0]);
  });

  it(`lets exactly one of ${CONTENDERS} ifAbsent acquires take over an expired lock`, async () => {
    const deviceId = randomUUID();
    await store.set(deviceId, { agent: "previous", ttlSeconds: 600 });
    await expireLock(database.db, deviceId);

    const results = await Promise.all(
      Array.from({ length: CONTENDERS }, (_, index) =>
        store.set(deviceId, { agent: `agent-${index}`, ttlSeconds: 600, condition: { kind: "ifAbsent" } }),
      ),
    );

    const { winners, losers } = winnersAndLosers(results);
    expect(winners).toHaveLength(1);
    for (const loser of losers) expect(loser).toEqual({ ok: false, reason: "held", current: winners[0] });
  });

  it(`lets exactly one of ${CONTENDERS} ifVersion sets with the same version win`, async () => {
    const deviceId = randomUUID();
    const initial = await store.set(deviceId, { agent: "previous", ttlSeconds: 600 });
    if (!initial.ok) throw new Error("The initial set was refused.");
    const condition = { kind: "ifVersion", version: initial.lock.version } as const;

    const results = await Promise.all(
      Array.from({ length: CONTENDERS }, (_, index) =>
        store.set(deviceId, { agent: `agent-${index}`, ttlSeconds: 600, condition }),
      ),
    );

    const { winners, losers } = winnersAndLosers(results);
    expect(winners).toHaveLength(1);
    for (const loser of losers) {
      expect(loser).toEqual({ ok: false, reason: "version_mismatch", current: winners[0] });
    }
  });

  it(`lets exactly one of ${CONTENDERS} ifVersion clears with the same version clear`, async () => {
    const deviceId = randomUUID();
    const initial = await store.set(deviceId, { agent: "previous", ttlSeconds: 600 });
    if (!initial.ok) throw new Error("The initial set was refused.");
    const condition = { kind: "ifVersion", version: initial.lock.version } as const;

    const results = await Promise.all(
      Array.from({ length: CONTENDERS }, () => store.clear(deviceId, condition)),
    );

    expect(results.filter((result) => result.ok)).toEqual([{ ok: true, cleared: true }]);
    expect(results.filter((result) => !result.ok)).toHaveLength(CONTENDERS - 1);
    expect(await store.get(deviceId)).toBeNull();
  });

  it(`hands out distinct versions to ${CONTENDERS} unconditional sets, and the last one standing holds the largest`, async () => {
    const deviceId = randomUUID();

    const results = await Promise.all(
      Array.from({ length: CONTENDERS }, (_, index) =>
        store.set(deviceId, { agent: `agent-${index}`, ttlSeconds: 600 }),
      ),
    );

    const { winners } = winnersAndLosers(results);
    expect(winners).toHaveLength(CONTENDERS);
    const versions = winners.map((lock) => lock.version);
    expect(new Set(versions).size).toBe(CONTENDERS);
    // The sets take the row one after another; a fencing token is only useful if the lock left
    // standing carries the largest token that any of them was given.
    const current = await store.get(deviceId);
    expect(current?.version).toBe(Math.max(...versions));
    expect(winners).toContainEqual(current);
  });
});
