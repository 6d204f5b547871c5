import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clearedSchema, lockSchema } from "../lib/openapi.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { expireLock } from "./helpers/locks.js";
import { bindRoutes, lockRequest, newDeviceId, type Routes } from "./helpers/routes.js";

describe.each(engines)("session-lock happy paths on $name", (engine) => {
  let database: TestDatabase;
  let routes: Routes;

  beforeAll(async () => {
    database = await engine.open();
    routes = bindRoutes(database, { DEFAULT_SESSION_TTL: "600", MAX_SESSION_TTL: "7200" });
  });
  afterAll(() => database.close());

  const call = (request: Request) => routes.sessionLock[request.method as "GET"](request);

  it("reads an unlocked device as all-null fields, without an ETag", async () => {
    const deviceId = newDeviceId();
    const response = await call(lockRequest("GET", deviceId));
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toBe("application/json");
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    expect(response.headers.get("ETag")).toBeNull();
    expect(await response.json()).toEqual({
      deviceId,
      activeAgent: null,
      lockedAt: null,
      expiresAt: null,
      ttlSeconds: null,
      version: null,
    });
  });

  it("sets a lock and reads it back with its version as ETag, times by the database", async () => {
    const deviceId = newDeviceId();
    const set = await call(lockRequest("PUT", deviceId, { body: { agent: "scheduling", ttlSeconds: 3600 } }));
    expect(set.status).toBe(200);
    const lock = lockSchema.parse(await set.json());
    expect(lock).toMatchObject({ deviceId, activeAgent: "scheduling", ttlSeconds: 3600 });
    expect(set.headers.get("ETag")).toBe(`"${lock.version}"`);
    expect(Date.parse(lock.expiresAt ?? "") - Date.parse(lock.lockedAt ?? "")).toBe(3_600_000);

    const read = await call(lockRequest("GET", deviceId));
    expect(read.headers.get("ETag")).toBe(`"${lock.version}"`);
    expect(await read.json()).toEqual(lock);
  });

  it("uses DEFAULT_SESSION_TTL when the body gives no ttlSeconds", async () => {
    const response = await call(lockRequest("PUT", newDeviceId(), { body: { agent: "billing" } }));
    expect((await response.json()).ttlSeconds).toBe(600);
  });

  it("accepts an upper-case device id and stores and returns it lower-case", async () => {
    const deviceId = newDeviceId();
    await call(lockRequest("PUT", deviceId.toUpperCase(), { body: { agent: "a" } }));
    const response = await call(lockRequest("GET", deviceId));
    const body = await response.json();
    expect(body.deviceId).toBe(deviceId);
    expect(body.activeAgent).toBe("a");
  });

  it("overwrites without conditions, with a larger version each time (renewal and hand-over)", async () => {
    const deviceId = newDeviceId();
    const versions: number[] = [];
    for (const agent of ["scheduling", "scheduling", "billing"]) {
      const response = await call(lockRequest("PUT", deviceId, { body: { agent, ttlSeconds: 60 } }));
      expect(response.status).toBe(200);
      versions.push((await response.json()).version);
    }
    expect(versions[1]).toBeGreaterThan(versions[0] ?? Number.POSITIVE_INFINITY);
    expect(versions[2]).toBeGreaterThan(versions[1] ?? Number.POSITIVE_INFINITY);
    expect((await (await call(lockRequest("GET", deviceId))).json()).activeAgent).toBe("billing");
  });

  it("clears a lock, then answers cleared: false (idempotent)", async () => {
    const deviceId = newDeviceId();
    await call(lockRequest("PUT", deviceId, { body: { agent: "scheduling" } }));
    const first = await call(lockRequest("DELETE", deviceId));
    expect(first.status).toBe(200);
    expect(clearedSchema.parse(await first.json())).toEqual({ deviceId, cleared: true });
    const second = await call(lockRequest("DELETE", deviceId));
    expect(await second.json()).toEqual({ deviceId, cleared: false });
    expect((await (await call(lockRequest("GET", deviceId))).json()).activeAgent).toBeNull();
  });

  it("treats an expired lock as absent before any purge, and clearing it reports cleared: false", async () => {
    const deviceId = newDeviceId();
    await call(lockRequest("PUT", deviceId, { body: { agent: "scheduling" } }));
    expect(await expireLock(database.db, deviceId)).toBe(true);
    expect((await (await call(lockRequest("GET", deviceId))).json()).activeAgent).toBeNull();
    expect(await (await call(lockRequest("DELETE", deviceId))).json()).toEqual({ deviceId, cleared: false });
  });

  it("answers HEAD like GET", async () => {
    const deviceId = newDeviceId();
    const set = await call(lockRequest("PUT", deviceId, { body: { agent: "a" } }));
    const head = await routes.sessionLock.HEAD(lockRequest("HEAD", deviceId));
    expect(head.status).toBe(200);
    expect(head.headers.get("ETag")).toBe(set.headers.get("ETag"));
  });

  it("answers OPTIONS with 204 and Allow", async () => {
    const response = await routes.sessionLock.OPTIONS(lockRequest("OPTIONS", null));
    expect(response.status).toBe(204);
    expect(response.headers.get("Allow")).toBe("GET, HEAD, PUT, DELETE, OPTIONS");
    expect(response.headers.get("Cache-Control")).toBe("no-store");
  });
});
