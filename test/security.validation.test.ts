import * as fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DatabaseHandle } from "../lib/db.js";
import { problemSchema } from "../lib/openapi.js";
import { connect } from "./helpers/engines.js";
import { fcParams } from "./helpers/fc.js";
import { deviceIdArb, type RequestSpec, requestArb, toRequest } from "./helpers/hostile.js";
import {
  authorizedGet,
  bindRoutes,
  CRON_SECRET,
  lockRequest,
  newDeviceId,
  type Routes,
} from "./helpers/routes.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";

const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Whether a header value, once `Headers` trims its spaces and tabs (as HTTP does), is a valid id. */
const isValidDeviceId = (raw: string | null) => {
  const id = raw?.replace(/^[\t ]+|[\t ]+$/g, "") ?? null;
  return id !== null && CANONICAL.test(id) && id !== "00000000-0000-0000-0000-000000000000";
};

/** Invalid requests to the session-lock route, with the code each must be refused with. */
const invalidRequests: [label: string, code: string, request: () => Request][] = [
  ["GET without a device id", "invalid_device_id", () => lockRequest("GET", null)],
  [
    "PUT with SQL as the device id",
    "invalid_device_id",
    () => lockRequest("PUT", "'; drop table conversation_states; --", { body: { agent: "scheduling" } }),
  ],
  ["DELETE with a braced id", "invalid_device_id", () => lockRequest("DELETE", `{${newDeviceId()}}`)],
  [
    "PUT with SQL as the agent",
    "invalid_body",
    () => lockRequest("PUT", newDeviceId(), { body: { agent: "x'; delete from conversation_states; --" } }),
  ],
  [
    "PUT with a 51-character agent",
    "invalid_body",
    () => lockRequest("PUT", newDeviceId(), { body: { agent: "a".repeat(51) } }),
  ],
  [
    "PUT with an agent outside ALLOWED_AGENTS",
    "agent_not_allowed",
    () => lockRequest("PUT", newDeviceId(), { body: { agent: "marketing" } }),
  ],
  [
    "PUT with an unknown key",
    "invalid_body",
    () => lockRequest("PUT", newDeviceId(), { body: { agent: "scheduling", version: 1 } }),
  ],
  [
    "PUT with a TTL over the maximum",
    "invalid_body",
    () => lockRequest("PUT", newDeviceId(), { body: { agent: "scheduling", ttlSeconds: 10 ** 9 } }),
  ],
  [
    "PUT as text/plain",
    "unsupported_media_type",
    () =>
      lockRequest("PUT", newDeviceId(), {
        body: '{"agent":"scheduling"}',
        headers: { "Content-Type": "text/plain" },
      }),
  ],
  [
    "PUT over 4 KiB",
    "payload_too_large",
    () => lockRequest("PUT", newDeviceId(), { body: { agent: "scheduling", pad: "x".repeat(5000) } }),
  ],
  [
    "PUT declaring a Content-Length over 4 KiB",
    "payload_too_large",
    () =>
      lockRequest("PUT", newDeviceId(), {
        body: '{"agent":"scheduling"}',
        headers: { "Content-Length": "5000" },
      }),
  ],
  [
    "PUT with a weak If-Match",
    "invalid_precondition",
    () =>
      lockRequest("PUT", newDeviceId(), { body: { agent: "scheduling" }, headers: { "If-Match": 'W/"1"' } }),
  ],
  [
    "DELETE with If-None-Match",
    "invalid_precondition",
    () => lockRequest("DELETE", newDeviceId(), { headers: { "If-None-Match": "*" } }),
  ],
  ["POST", "method_not_allowed", () => lockRequest("POST", newDeviceId(), { body: { agent: "scheduling" } })],
];

/**
 * "Validated before any SQL", proved at the HTTP level on both network drivers: the routes' database
 * is a silent TCP proxy that counts connections. A request that is refused for its input must be
 * answered at once and open no connection; a valid request (the control) does connect.
 */
describe.each(["pg", "neon"] as const)("input refused before any SQL, over the %s driver", (driver) => {
  let proxy: TcpProxy;
  let handle: DatabaseHandle;
  let routes: Routes;

  beforeAll(async () => {
    proxy = await startTcpProxy({ host: "127.0.0.1", port: 9 }, "blackhole");
    handle = await connect(driver, `postgres://postgres@127.0.0.1:${proxy.port}/none`, {
      connectTimeoutMs: 300,
      queryTimeoutMs: 300,
    });
    routes = bindRoutes(handle, {
      ALLOWED_AGENTS: "scheduling,billing",
      MAX_SESSION_TTL: "3600",
      DEFAULT_SESSION_TTL: "600",
    });
  });
  afterAll(async () => {
    await handle?.close();
    await proxy?.close();
  });

  it.each(invalidRequests)("answers %s with %s and opens no connection", async (_label, code, request) => {
    const before = proxy.acceptedConnections;
    const made = request();
    const response = await routes.sessionLock[made.method as "GET"](made);
    expect(problemSchema.parse(await response.json()).code).toBe(code);
    expect(proxy.acceptedConnections).toBe(before);
  });

  it("refuses cron and stats without the secret, and stats with a wrong one, before any SQL", async () => {
    const before = proxy.acceptedConnections;
    for (const secret of [undefined, "", "wrong-secret-0123456789", CRON_SECRET.slice(0, -1)]) {
      for (const handlers of [routes.cron, routes.stats]) {
        const response = await handlers.GET(authorizedGet("/api/stats", secret));
        expect(response.status).toBe(401);
      }
    }
    expect(proxy.acceptedConnections).toBe(before);
  });

  it("refuses any request with an invalid device id before any SQL (property)", async () => {
    const invalidSpec = requestArb([]).chain((spec) =>
      deviceIdArb([])
        .filter((id) => !isValidDeviceId(id))
        .map(
          (deviceId): RequestSpec => ({
            ...spec,
            method:
              spec.method === "POST" || spec.method === "PATCH" || spec.method === "OPTIONS"
                ? "GET"
                : spec.method,
            deviceId,
          }),
        ),
    );
    await fc.assert(
      fc.asyncProperty(invalidSpec, async (spec) => {
        const before = proxy.acceptedConnections;
        const response = await routes.sessionLock[spec.method](toRequest(spec));
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.status).toBeLessThan(500);
        expect(proxy.acceptedConnections).toBe(before);
      }),
      fcParams(100),
    );
  });

  it("does connect for a valid request (so the counts above mean something)", async () => {
    const before = proxy.acceptedConnections;
    const response = await routes.sessionLock.GET(lockRequest("GET", newDeviceId()));
    expect(response.status).toBe(503);
    expect(proxy.acceptedConnections).toBeGreaterThan(before);
  });
});
