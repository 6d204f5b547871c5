import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { bindRoutes, lockRequest, newDeviceId } from "./helpers/routes.js";

describe.each(engines.slice(0, 1))("request logs on $name", (engine) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(() => database.close());

  it("writes one record per request with method, route, status, duration and request id", async () => {
    const routes = bindRoutes(database);
    const response = await routes.sessionLock.GET(lockRequest("GET", newDeviceId()));
    expect(routes.logs).toHaveLength(1);
    expect(routes.logs[0]).toMatchObject({
      level: "info",
      msg: "request",
      method: "GET",
      route: "session-lock",
      status: 200,
      requestId: response.headers.get("X-Request-Id"),
    });
    expect(routes.logs[0]?.durationMs).toBeTypeOf("number");
  });

  it("uses Vercel's x-vercel-id as the request id", async () => {
    const routes = bindRoutes(database);
    const vercelId = "fra1::iad1::abcde-1700000000000-0123456789ab";
    const response = await routes.sessionLock.GET(
      lockRequest("GET", newDeviceId(), { headers: { "x-vercel-id": vercelId } }),
    );
    expect(response.headers.get("X-Request-Id")).toBe(vercelId);
    expect(routes.logs[0]?.requestId).toBe(vercelId);
  });

  it("never logs a device id, only a short stable hash of it", async () => {
    const routes = bindRoutes(database);
    const deviceId = newDeviceId();
    await routes.sessionLock.PUT(lockRequest("PUT", deviceId, { body: { agent: "a" } }));
    await routes.sessionLock.GET(lockRequest("GET", deviceId.toUpperCase()));
    await routes.sessionLock.GET(lockRequest("GET", `{${deviceId}}`));
    const text = JSON.stringify(routes.logs);
    expect(text.toLowerCase()).not.toContain(deviceId);
    expect(text.toLowerCase()).not.toContain(deviceId.replaceAll("-", ""));
    expect(routes.logs[0]?.device).toMatch(/^[0-9a-f]{12}$/);
    expect(routes.logs[1]?.device).toBe(routes.logs[0]?.device);
  });
});
