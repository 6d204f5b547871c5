import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLockClient, LockClientError } from "../lib/client.js";
import type { DatabaseHandle } from "../lib/db.js";
import { startApi } from "./client.fixtures.js";
import { migratedPglite } from "./helpers/engines.js";

let handle: DatabaseHandle;
let api: Awaited<ReturnType<typeof startApi>>;
let client: ReturnType<typeof createLockClient>;

beforeAll(async () => {
  handle = await migratedPglite();
  api = await startApi({ open: async () => handle, env: { ALLOWED_AGENTS: "scheduling,billing,support" } });
  client = createLockClient({ baseUrl: api.url });
});

afterAll(async () => {
  await api?.close();
  await handle?.close();
});

const newDevice = () => crypto.randomUUID();

describe("client results over HTTP", () => {
  it("reads no lock on a fresh device as null", async () => {
    expect(await client.get(newDevice())).toBeNull();
    expect(await client.activeAgent(newDevice())).toBeNull();
  });

  it("sets a lock and reads it back with dates, ttl and version", async () => {
    const deviceId = newDevice();
    const set = await client.set(deviceId, { agent: "scheduling", ttlSeconds: 600 });
    if (!set.ok) throw new Error("set was refused");
    expect(set.lock).toMatchObject({ deviceId, activeAgent: "scheduling", ttlSeconds: 600 });
    expect(set.lock.expiresAt.getTime() - set.lock.lockedAt.getTime()).toBe(600_000);
    expect(await client.get(deviceId)).toEqual(set.lock);
    expect(await client.activeAgent(deviceId)).toBe("scheduling");
  });

  it("lower-cases the device id as the server stores it", async () => {
    const deviceId = newDevice();
    await client.set(deviceId.toUpperCase(), { agent: "billing" });
    expect((await client.get(deviceId))?.deviceId).toBe(deviceId);
  });

  it("acquires a free lock and is refused with the holder when it is taken", async () => {
    const deviceId = newDevice();
    const first = await client.acquire(deviceId, "scheduling", 60);
    if (!first.ok) throw new Error("first acquire was refused");
    const second = await client.acquire(deviceId, "billing", 60);
    expect(second).toEqual({ ok: false, reason: "held", current: first.lock });
  });

  it("renews under the held version, with a larger version and the lock's own ttl", async () => {
    const deviceId = newDevice();
    const taken = await client.acquire(deviceId, "scheduling", 120);
    if (!taken.ok) throw new Error("acquire was refused");
    const renewed = await client.renew(taken.lock);
    if (!renewed.ok) throw new Error("renew was refused");
    expect(renewed.lock.version).toBeGreaterThan(taken.lock.version);
    expect(renewed.lock).toMatchObject({ activeAgent: "scheduling", ttlSeconds: 120 });
    await client.renew(renewed.lock, 30);
    expect((await client.get(deviceId))?.ttlSeconds).toBe(30);
  });

  it("refuses a renew or release under a stale version and reports the current lock", async () => {
    const deviceId = newDevice();
    const taken = await client.acquire(deviceId, "scheduling");
    if (!taken.ok) throw new Error("acquire was refused");
    const overwritten = await client.set(deviceId, { agent: "billing" });
    if (!overwritten.ok) throw new Error("set was refused");
    expect(await client.renew(taken.lock)).toEqual({
      ok: false,
      reason: "version_mismatch",
      current: overwritten.lock,
    });
    expect(await client.release(taken.lock)).toEqual({
      ok: false,
      reason: "version_mismatch",
      current: overwritten.lock,
    });
    expect(await client.activeAgent(deviceId)).toBe("billing");
  });

  it("releases under the held version", async () => {
    const deviceId = newDevice();
    const taken = await client.acquire(deviceId, "support");
    if (!taken.ok) throw new Error("acquire was refused");
    expect(await client.release(taken.lock)).toEqual({ ok: true, cleared: true });
    expect(await client.get(deviceId)).toBeNull();
    expect(await client.release(taken.lock)).toEqual({
      ok: false,
      reason: "version_mismatch",
      current: null,
    });
  });

  it("clears idempotently", async () => {
    const deviceId = newDevice();
    await client.set(deviceId, { agent: "scheduling" });
    expect(await client.clear(deviceId)).toEqual({ ok: true, cleared: true });
    expect(await client.clear(deviceId)).toEqual({ ok: true, cleared: false });
  });

  it("passes the store's conditions through: ifPresent on no lock is refused as absent", async () => {
    const deviceId = newDevice();
    const result = await client.set(deviceId, { agent: "billing", condition: { kind: "ifPresent" } });
    expect(result).toEqual({ ok: false, reason: "absent", current: null });
  });

  it("treats an expired lock as none: it reads null and cannot be renewed", async () => {
    const deviceId = newDevice();
    const taken = await client.acquire(deviceId, "scheduling", 1);
    if (!taken.ok) throw new Error("acquire was refused");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await client.get(deviceId)).toBeNull();
    expect(await client.renew(taken.lock)).toEqual({ ok: false, reason: "version_mismatch", current: null });
    expect((await client.acquire(deviceId, "billing")).ok).toBe(true);
  });

  it("hands out ever larger versions, across clears", async () => {
    const deviceId = newDevice();
    const versions: number[] = [];
    for (const agent of ["scheduling", "billing", "support"]) {
      const result = await client.acquire(deviceId, agent);
      if (!result.ok) throw new Error("acquire was refused");
      versions.push(result.lock.version);
      await client.clear(deviceId);
    }
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(3);
  });
});

describe("client errors over HTTP", () => {
  async function failure(promise: Promise<unknown>): Promise<LockClientError> {
    const error = await promise.then(
      () => null,
      (caught: unknown) => caught,
    );
    if (!(error instanceof LockClientError)) throw new Error(`expected a LockClientError, got ${error}`);
    return error;
  }

  it("surfaces an invalid device id as a typed error, without retrying", async () => {
    const before = api.requests.length;
    const error = await failure(client.get("not-a-uuid"));
    expect(error).toMatchObject({ code: "invalid_device_id", status: 400, attempts: 1, unavailable: false });
    expect(error.detail).toMatch(/X-Device-ID/);
    expect(api.requests.length - before).toBe(1);
  });

  it("surfaces a bad ttl as invalid_body with the failing field", async () => {
    const error = await failure(client.set(newDevice(), { agent: "scheduling", ttlSeconds: 0 }));
    expect(error).toMatchObject({ code: "invalid_body", status: 400 });
    expect(error.problem?.fields).toEqual([{ field: "ttlSeconds", message: expect.any(String) }]);
  });

  it("surfaces an agent outside ALLOWED_AGENTS as agent_not_allowed", async () => {
    const error = await failure(client.acquire(newDevice(), "weather"));
    expect(error).toMatchObject({ code: "agent_not_allowed", status: 400 });
  });

  it("fail-open still throws for a bad request: only unavailability routes as fresh", async () => {
    const reported: unknown[] = [];
    const failOpen = createLockClient({ baseUrl: api.url, failOpen: (error) => reported.push(error) });
    await expect(failOpen.get("not-a-uuid")).rejects.toMatchObject({ code: "invalid_device_id" });
    expect(reported).toEqual([]);
  });
});
