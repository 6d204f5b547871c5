import { sql } from "drizzle-orm";
import * as fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_NAME_PATTERN } from "../lib/validation.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { fcParams, scaledTimeoutMs } from "./helpers/fc.js";
import {
  bodyArb,
  bodyBytes,
  describeSpec,
  expectWellFormed,
  headerValue,
  ROUTE_METHODS,
  requestArb,
  toRequest,
} from "./helpers/hostile.js";
import { expireLock } from "./helpers/locks.js";
import {
  authorizesCron,
  bindRoutes,
  CRON_SECRET,
  lockRequest,
  newDeviceId,
  type Routes,
} from "./helpers/routes.js";
import { snapshot } from "./helpers/snapshot.js";

/**
 * Property-based tests of the HTTP surface, in-process: whatever a client sends (device ids,
 * bodies, content types, methods, conditional and auth headers, sizes), the answer is never a 5xx,
 * errors are `problem+json` with the contract's keys and leak nothing, and a rejected request leaves
 * the database exactly as it was. `FC_RUNS_SCALE` raises the run counts (the stress run does).
 */
describe.each(engines)("the HTTP surface under hostile input on $name", (engine) => {
  let database: TestDatabase;
  let open: Routes;
  let strict: Routes;
  const knownDevices = [newDeviceId(), newDeviceId(), newDeviceId()];

  beforeAll(async () => {
    database = await engine.open();
    open = bindRoutes(database);
    strict = bindRoutes(database, {
      ALLOWED_AGENTS: "scheduling,billing",
      MAX_SESSION_TTL: "3600",
      DEFAULT_SESSION_TTL: "600",
      CORS_ORIGINS: "https://chat.example.com",
    });
    for (const deviceId of knownDevices) {
      const response = await open.sessionLock.PUT(
        lockRequest("PUT", deviceId, { body: { agent: "scheduling", ttlSeconds: 3600 } }),
      );
      expect(response.status).toBe(200);
    }
  });
  afterAll(() => database?.close());

  it(
    "session-lock: never a 5xx, errors are problem+json, a rejected request changes nothing",
    async () => {
      await fc.assert(
        fc.asyncProperty(requestArb(knownDevices), fc.boolean(), async (spec, useStrict) => {
          const routes = useStrict ? strict : open;
          const before = await snapshot(database.db);
          const response = await routes.sessionLock[spec.method](toRequest(spec));
          const { status, body } = await expectWellFormed(response, {
            requestText: describeSpec(spec),
            kind: "session-lock",
            method: spec.method,
          });
          if (status === 200 && spec.method === "PUT") {
            // Accepted only what the contract allows.
            const lock = body as { activeAgent: string; ttlSeconds: number };
            expect(lock.activeAgent).toMatch(AGENT_NAME_PATTERN);
            if (useStrict) expect(["scheduling", "billing"]).toContain(lock.activeAgent);
            expect(lock.ttlSeconds).toBeLessThanOrEqual(useStrict ? 3600 : 604_800);
          }
          if (status < 400) return;
          const after = await snapshot(database.db);
          expect(after.rows, "a rejected request leaves every row as it was").toBe(before.rows);
          // A refused `If-None-Match: *` may have drawn a version before finding the live lock
          // (an INSERT … ON CONFLICT evaluates its values first): a gap in the fencing tokens,
          // harmless since tokens only need to grow. Every other rejection draws none.
          if (!(status === 412 && spec.ifNoneMatch === "*")) {
            expect(after.sequence, "a rejected request draws no version").toBe(before.sequence);
          }
        }),
        fcParams(150),
      );
    },
    scaledTimeoutMs(60_000),
  );

  it(
    "a fresh device's row stays absent after any request that was refused",
    async () => {
      await fc.assert(
        fc.asyncProperty(requestArb([]), async (spec) => {
          const deviceId = newDeviceId();
          // The spec's id is replaced by a fresh, valid one: only the rest of the request is hostile.
          const request = toRequest({ ...spec, deviceId });
          const response = await strict.sessionLock[spec.method](request);
          const { status } = await expectWellFormed(response, {
            requestText: describeSpec(spec),
            kind: "session-lock",
            method: spec.method,
          });
          if (status < 400) return;
          const read = await strict.sessionLock.GET(lockRequest("GET", deviceId));
          expect((await read.json()).activeAgent).toBeNull();
          const rows = (await database.db.execute(
            sql`select count(*)::int as n from conversation_states where device_id = ${deviceId}::uuid`,
          )) as { rows: { n: number }[] };
          expect(Number(rows.rows[0]?.n)).toBe(0);
        }),
        fcParams(100),
      );
    },
    scaledTimeoutMs(60_000),
  );

  it(
    "cron, stats, health and openapi: never a 5xx; without the exact secret, 401 and nothing purged",
    async () => {
      const expiredDevice = newDeviceId();
      const routeArb = fc.constantFrom("cron", "stats", "health", "openapi") as fc.Arbitrary<
        "cron" | "stats" | "health" | "openapi"
      >;
      await fc.assert(
        fc.asyncProperty(
          routeArb,
          fc.constantFrom(...ROUTE_METHODS),
          fc.oneof(
            { weight: 1, arbitrary: fc.constant<string | null>(`Bearer ${CRON_SECRET}`) },
            { weight: 1, arbitrary: fc.constant<string | null>(null) },
            {
              weight: 4,
              arbitrary: fc.oneof(
                headerValue(80),
                fc.constantFrom(
                  `Bearer ${CRON_SECRET} `,
                  `Bearer ${CRON_SECRET}\t`,
                  `Bearer  ${CRON_SECRET}`,
                  `bearer ${CRON_SECRET}`,
                  `Bearer ${CRON_SECRET.toUpperCase()}`,
                  `Bearer ${CRON_SECRET.slice(0, -1)}`,
                  `Bearer ${CRON_SECRET}${CRON_SECRET}`,
                  `Token ${CRON_SECRET}`,
                  CRON_SECRET,
                  `Bearer ${"x".repeat(10_000)}`,
                ),
                fc.string().map((s) => `Bearer ${s}`),
              ),
            },
          ),
          bodyArb,
          async (routeName, method, authorization, body) => {
            // Something to purge, so that a purge that should not have run shows.
            await open.sessionLock.PUT(lockRequest("PUT", expiredDevice, { body: { agent: "scheduling" } }));
            await expireLock(database.db, expiredDevice);
            const headers = new Headers();
            if (authorization !== null) headers.set("Authorization", authorization);
            headers.set("Content-Type", "application/json");
            const bytes = method === "GET" || method === "HEAD" ? null : bodyBytes(body);
            const request = new Request(`http://localhost/api/${routeName}`, {
              method,
              headers,
              body: bytes,
            });
            const before = await snapshot(database.db);
            const response = await open[routeName][method](request);
            const { status } = await expectWellFormed(response, {
              requestText: JSON.stringify({ authorization, body }),
              kind: "other",
              method,
            });
            const exact = authorizesCron(headers.get("Authorization"));
            const secured = routeName === "cron" || routeName === "stats";
            // The cron's GET purges, so it serves no HEAD.
            if (routeName === "cron" && method === "HEAD") expect(status).toBe(405);
            else if (secured && (method === "GET" || method === "HEAD"))
              expect(status).toBe(exact ? 200 : 401);
            if (status >= 400) expect((await snapshot(database.db)).rows).toBe(before.rows);
          },
        ),
        fcParams(100),
      );
    },
    scaledTimeoutMs(60_000),
  );
});
