import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockSchema, problemSchema } from "../lib/openapi.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { expireLock } from "./helpers/locks.js";
import { bindRoutes, lockRequest, newDeviceId, type Routes } from "./helpers/routes.js";

describe.each(engines)("conditional requests on $name", (engine) => {
  let database: TestDatabase;
  let routes: Routes;

  beforeAll(async () => {
    database = await engine.open();
    routes = bindRoutes(database);
  });
  afterAll(() => database.close());

  const call = (request: Request) => routes.sessionLock[request.method as "GET"](request);
  const put = (deviceId: string, agent: string, headers: Record<string, string> = {}) =>
    call(lockRequest("PUT", deviceId, { body: { agent, ttlSeconds: 300 }, headers }));
  const acquire = (deviceId: string, agent: string) => put(deviceId, agent, { "If-None-Match": "*" });
  const versionOf = async (response: Response) => lockSchema.parse(await response.json()).version ?? -1;

  it("If-None-Match: * acquires a free device, then refuses with 412 and the holder as current", async () => {
    const deviceId = newDeviceId();
    const first = await acquire(deviceId, "scheduling");
    expect(first.status).toBe(200);
    const holder = await first.json();

    const second = await acquire(deviceId, "billing");
    expect(second.status).toBe(412);
    expect(second.headers.get("Content-Type")).toBe("application/problem+json");
    const problem = problemSchema.parse(await second.json());
    expect(problem.code).toBe("precondition_failed");
    expect(problem.current).toEqual(holder);
    expect((await (await call(lockRequest("GET", deviceId))).json()).activeAgent).toBe("scheduling");
  });

  it("If-None-Match: * takes over an expired lock", async () => {
    const deviceId = newDeviceId();
    await acquire(deviceId, "scheduling");
    await expireLock(database.db, deviceId);
    const response = await acquire(deviceId, "billing");
    expect(response.status).toBe(200);
    expect((await response.json()).activeAgent).toBe("billing");
  });

  it("of 20 concurrent acquires over HTTP handlers exactly one wins", async () => {
    const deviceId = newDeviceId();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => acquire(deviceId, `agent-${i}`)),
    );
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 412)).toHaveLength(19);
    const winner = await responses.find((r) => r.status === 200)?.json();
    expect((await (await call(lockRequest("GET", deviceId))).json()).activeAgent).toBe(winner.activeAgent);
  });

  it('If-Match: "<version>" renews with the current version and refuses a stale one', async () => {
    const deviceId = newDeviceId();
    const v1 = await versionOf(await acquire(deviceId, "scheduling"));
    const renewed = await put(deviceId, "scheduling", { "If-Match": `"${v1}"` });
    expect(renewed.status).toBe(200);
    const v2 = await versionOf(renewed);
    expect(v2).toBeGreaterThan(v1);

    const stale = await put(deviceId, "billing", { "If-Match": `"${v1}"` });
    expect(stale.status).toBe(412);
    const problem = problemSchema.parse(await stale.json());
    expect(problem.current?.version).toBe(v2);
    expect(problem.current?.activeAgent).toBe("scheduling");
  });

  it("compares If-Match exactly: a zero-padded tag of the current version matches nothing", async () => {
    const deviceId = newDeviceId();
    const v1 = await versionOf(await acquire(deviceId, "scheduling"));
    for (const tag of [`"0${v1}"`, `"00${v1}"`]) {
      const padded = await put(deviceId, "billing", { "If-Match": tag });
      expect({ tag, status: padded.status }).toEqual({ tag, status: 412 });
      expect(problemSchema.parse(await padded.json()).current?.version).toBe(v1);
      const cleared = await call(lockRequest("DELETE", deviceId, { headers: { "If-Match": tag } }));
      expect({ tag, status: cleared.status }).toEqual({ tag, status: 412 });
    }
    // A tag past 2^53 is no version this service sends either.
    const huge = await put(deviceId, "billing", { "If-Match": '"900719925474099300"' });
    expect(huge.status).toBe(412);
    const held = await call(lockRequest("GET", deviceId));
    expect(lockSchema.parse(await held.json())).toMatchObject({ activeAgent: "scheduling", version: v1 });
  });

  it("If-Match on DELETE clears only the version it names", async () => {
    const deviceId = newDeviceId();
    const v1 = await versionOf(await acquire(deviceId, "scheduling"));
    const stale = await call(lockRequest("DELETE", deviceId, { headers: { "If-Match": `"${v1 + 1000}"` } }));
    expect(stale.status).toBe(412);
    expect(problemSchema.parse(await stale.json()).current?.version).toBe(v1);

    const current = await call(lockRequest("DELETE", deviceId, { headers: { "If-Match": `"${v1}"` } }));
    expect(current.status).toBe(200);
    expect(await current.json()).toEqual({ deviceId, cleared: true });
  });

  it("If-Match fails with current: null when there is no active lock (also an expired one)", async () => {
    const deviceId = newDeviceId();
    const v1 = await versionOf(await acquire(deviceId, "scheduling"));
    await expireLock(database.db, deviceId);
    for (const request of [
      lockRequest("PUT", deviceId, { body: { agent: "a" }, headers: { "If-Match": `"${v1}"` } }),
      lockRequest("DELETE", deviceId, { headers: { "If-Match": `"${v1}"` } }),
      lockRequest("PUT", deviceId, { body: { agent: "a" }, headers: { "If-Match": "*" } }),
    ]) {
      const response = await call(request);
      expect(response.status).toBe(412);
      expect(problemSchema.parse(await response.json()).current?.activeAgent).toBeNull();
    }
  });

  it("If-Match: * replaces whatever active lock exists", async () => {
    const deviceId = newDeviceId();
    await acquire(deviceId, "scheduling");
    const response = await put(deviceId, "billing", { "If-Match": "*" });
    expect(response.status).toBe(200);
    expect((await response.json()).activeAgent).toBe("billing");
  });

  it.each([
    ["a weak tag", { "If-Match": 'W/"1"' }],
    ["a list of tags", { "If-Match": '"1", "2"' }],
    ["an unquoted tag", { "If-Match": "1" }],
    ["If-None-Match with a tag", { "If-None-Match": '"1"' }],
    ["both headers", { "If-Match": '"1"', "If-None-Match": "*" }],
  ])("answers 400 invalid_precondition for %s and changes nothing", async (_name, headers) => {
    const deviceId = newDeviceId();
    const response = await put(deviceId, "scheduling", headers);
    expect(response.status).toBe(400);
    expect(problemSchema.parse(await response.json()).code).toBe("invalid_precondition");
    expect((await (await call(lockRequest("GET", deviceId))).json()).activeAgent).toBeNull();
  });

  it("refuses If-None-Match on DELETE", async () => {
    const deviceId = newDeviceId();
    await acquire(deviceId, "scheduling");
    const response = await call(lockRequest("DELETE", deviceId, { headers: { "If-None-Match": "*" } }));
    expect(response.status).toBe(400);
    expect((await (await call(lockRequest("GET", deviceId))).json()).activeAgent).toBe("scheduling");
  });
});
