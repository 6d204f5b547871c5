import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord } from "../lib/context.js";
import { openDatabase } from "../lib/db.js";
import type { RouteHandlers } from "../lib/http.js";
import { blankPglite, engines, type TestDatabase } from "./helpers/engines.js";
import {
  authorizedGet,
  bindRoutes,
  CRON_SECRET,
  lockRequest,
  newDeviceId,
  type Routes,
} from "./helpers/routes.js";

/** Every spelling of `deviceId` that would identify it in a log. */
function spellings(deviceId: string): string[] {
  const lower = deviceId.toLowerCase();
  return [lower, lower.replaceAll("-", ""), lower.slice(0, 18), lower.slice(-17)];
}

function expectNoDeviceIds(logs: LogRecord[], deviceIds: string[]): void {
  const text = JSON.stringify(logs).toLowerCase();
  for (const deviceId of deviceIds) {
    for (const spelling of spellings(deviceId)) {
      if (text.includes(spelling)) expect.fail(`The log holds ${spelling}: ${text.slice(0, 2000)}`);
    }
  }
}

/** Sends one request per route and method with `deviceId` (in several spellings) wherever it fits. */
async function everyRequest(routes: Routes, deviceId: string): Promise<void> {
  const forms = [
    deviceId,
    deviceId.toUpperCase(),
    `{${deviceId}}`,
    `urn:uuid:${deviceId}`,
    deviceId.replaceAll("-", ""),
  ];
  const send = (handlers: RouteHandlers, request: Request) => handlers[request.method as "GET"](request);
  for (const form of forms) {
    for (const method of ["GET", "HEAD", "DELETE", "OPTIONS", "POST", "PATCH"]) {
      await send(routes.sessionLock, lockRequest(method, form));
    }
    await send(routes.sessionLock, lockRequest("PUT", form, { body: { agent: "scheduling" } }));
    await send(routes.sessionLock, lockRequest("PUT", form, { body: { agent: "not allowed!" } }));
    await send(
      routes.sessionLock,
      lockRequest("PUT", form, { body: { agent: "scheduling", pad: "x".repeat(5000) } }),
    );
    await send(
      routes.sessionLock,
      lockRequest("PUT", form, { body: "{}", headers: { "Content-Type": "text/plain" } }),
    );
    // A refused acquire and a refused conditional clear: the answer carries the lock, the log must not.
    await send(
      routes.sessionLock,
      lockRequest("PUT", form, { body: { agent: "billing" }, headers: { "If-None-Match": "*" } }),
    );
    await send(routes.sessionLock, lockRequest("DELETE", form, { headers: { "If-Match": '"1"' } }));
    await send(routes.sessionLock, lockRequest("DELETE", form, { headers: { "If-Match": "garbage" } }));
    for (const [handlers, path] of [
      [routes.cron, "/api/cron/purge-expired"],
      [routes.stats, "/api/stats"],
      [routes.health, "/api/health"],
      [routes.openapi, "/api/openapi"],
    ] as const) {
      for (const secret of [CRON_SECRET, "wrong-secret-0123456789", undefined]) {
        const request = authorizedGet(path, secret);
        request.headers.set("X-Device-ID", form);
        await send(handlers, request);
      }
    }
  }
}

describe.each(engines.slice(0, 1))("device ids in the logs on $name", (engine) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(() => database?.close());

  it("keeps every spelling of a device id out of the logs of every route, method and refusal", async () => {
    const routes = bindRoutes(database, { ALLOWED_AGENTS: "scheduling,billing", CORS_ORIGINS: "*" });
    const deviceId = newDeviceId();
    await everyRequest(routes, deviceId);
    const statuses = new Set(routes.logs.map((record) => record.status));
    // The requests above did reach the answers this test is about.
    for (const status of [200, 204, 400, 401, 405, 412, 413, 415]) expect(statuses).toContain(status);
    expectNoDeviceIds(routes.logs, [deviceId]);
  });
});

/**
 * On a database failure (503) or an unexpected error (500) the route logs the error and its
 * stack; drizzle's own message repeats the query's parameters, device ids among them, so the log
 * must keep only the query.
 */
describe("device ids in the logs of failures", () => {
  it("keeps the device id out of the log of a 503 database_unavailable", async () => {
    const handle = await openDatabase({ url: "postgres://postgres@127.0.0.1:1/none", connectTimeoutMs: 500 });
    try {
      const routes = bindRoutes(handle);
      const deviceId = newDeviceId();
      const response = await routes.sessionLock.GET(lockRequest("GET", deviceId));
      expect(response.status).toBe(503);
      expectNoDeviceIds(routes.logs, [deviceId]);
    } finally {
      await handle.close();
    }
  });

  it("keeps the device id out of the log of a 500 internal_error", async () => {
    // Not migrated: every statement fails.
    const handle = await blankPglite();
    try {
      const routes = bindRoutes(handle);
      const deviceId = newDeviceId();
      const response = await routes.sessionLock.PUT(lockRequest("PUT", deviceId, { body: { agent: "a" } }));
      expect(response.status).toBe(500);
      expectNoDeviceIds(routes.logs, [deviceId]);
    } finally {
      await handle.close();
    }
  });
});
