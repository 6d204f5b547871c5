import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drizzleOf } from "../lib/drizzle.js";
import { problemSchema, purgeResultSchema, statsSchema } from "../lib/openapi.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { backdateLock, expireLock } from "./helpers/locks.js";
import {
  authorizedGet,
  bindRoutes,
  CRON_SECRET,
  lockRequest,
  newDeviceId,
  type Routes,
} from "./helpers/routes.js";

describe.each(engines)("cron and stats on $name", (engine) => {
  let database: TestDatabase;
  let routes: Routes;
  beforeAll(async () => {
    database = await engine.open();
    routes = bindRoutes(database, { PURGE_BATCH_SIZE: "2" });
  });
  afterAll(() => database.close());

  const purge = (secret?: string) => routes.cron.GET(authorizedGet("/api/cron/purge-expired", secret));
  const stats = (secret?: string) => routes.stats.GET(authorizedGet("/api/stats", secret));
  const lock = async (agent: string) => {
    const deviceId = newDeviceId();
    await routes.sessionLock.PUT(lockRequest("PUT", deviceId, { body: { agent, ttlSeconds: 3600 } }));
    return deviceId;
  };

  it.each([
    ["no Authorization", undefined],
    ["a wrong secret", "wrong-secret-0123456789"],
    ["the secret with a suffix", `${CRON_SECRET}x`],
    ["an empty bearer", ""],
  ])("answers 401 for %s and purges nothing", async (_name, secret) => {
    const deviceId = await lock("scheduling");
    await expireLock(database.db, deviceId);
    for (const response of [await purge(secret), await stats(secret)]) {
      expect(response.status).toBe(401);
      expect(problemSchema.parse(await response.json()).code).toBe("unauthorized");
    }
    const after = statsSchema.parse(await (await stats(CRON_SECRET)).json());
    expect(after.expiredAwaitingPurge).toBeGreaterThanOrEqual(1);
    await purge(CRON_SECRET);
  });

  it("answers HEAD with 405 and purges nothing, even with the secret: its GET is not safe", async () => {
    const deviceId = await lock("scheduling");
    await expireLock(database.db, deviceId);
    const head = await routes.cron.HEAD(
      new Request("http://localhost/api/cron/purge-expired", {
        method: "HEAD",
        headers: { Authorization: `Bearer ${CRON_SECRET}` },
      }),
    );
    expect(head.status).toBe(405);
    expect(head.headers.get("Allow")).toBe("GET, OPTIONS");
    const after = statsSchema.parse(await (await stats(CRON_SECRET)).json());
    expect(after.expiredAwaitingPurge).toBeGreaterThanOrEqual(1);
    // Stats' GET only reads, so its HEAD answers as GET does.
    const statsHead = await routes.stats.HEAD(
      new Request("http://localhost/api/stats", {
        method: "HEAD",
        headers: { Authorization: `Bearer ${CRON_SECRET}` },
      }),
    );
    expect(statsHead.status).toBe(200);
    await purge(CRON_SECRET);
  });

  it("answers a plain secret without Bearer with 401", async () => {
    const response = await routes.cron.GET(
      new Request("http://localhost/api/cron/purge-expired", { headers: { Authorization: CRON_SECRET } }),
    );
    expect(response.status).toBe(401);
  });

  it.each([
    // An empty value counts as unset.
    ["unset", ""],
    ["shorter than 16 characters", "short-secret"],
  ])("refuses to run with 500 misconfigured while CRON_SECRET is %s, whatever is sent", async (_name, configured) => {
    const misconfigured = bindRoutes(database, { CRON_SECRET: configured });
    for (const secret of [undefined, "", configured, "undefined"]) {
      for (const handlers of [misconfigured.cron, misconfigured.stats]) {
        const response = await handlers.GET(authorizedGet("/api/cron/purge-expired", secret));
        expect(response.status).toBe(500);
        expect(problemSchema.parse(await response.json()).code).toBe("misconfigured");
      }
    }
  });

  it("purges expired rows in batches and keeps live ones; a second run purges nothing", async () => {
    const live = await lock("scheduling");
    const expired = await Promise.all([lock("a"), lock("b"), lock("c"), lock("d"), lock("e")]);
    for (const deviceId of expired) await expireLock(database.db, deviceId);

    const first = await purge(CRON_SECRET);
    expect(first.status).toBe(200);
    const result = purgeResultSchema.parse(await first.json());
    expect(result.purged).toBe(5);
    expect(result.batches).toBe(3);
    expect(result.complete).toBe(true);

    const second = purgeResultSchema.parse(await (await purge(CRON_SECRET)).json());
    expect(second).toMatchObject({ purged: 0, batches: 1, complete: true });
    const read = await routes.sessionLock.GET(lockRequest("GET", live));
    expect((await read.json()).activeAgent).toBe("scheduling");
  });

  it("reports stats by database time: counts, agents and ages", async () => {
    const fresh = bindRoutes(await engine.open());
    try {
      const empty = statsSchema.parse(
        await (await fresh.stats.GET(authorizedGet("/api/stats", CRON_SECRET))).json(),
      );
      expect(empty).toEqual({
        activeLocks: 0,
        expiredAwaitingPurge: 0,
        byAgent: {},
        oldestLockAgeSeconds: null,
        averageLockAgeSeconds: null,
      });
      const put = (agent: string, deviceId = newDeviceId()) =>
        fresh.sessionLock
          .PUT(lockRequest("PUT", deviceId, { body: { agent, ttlSeconds: 3600 } }))
          .then(() => deviceId);
      const old = await put("scheduling");
      await put("scheduling");
      await put("billing");
      const gone = await put("billing");
      const db = await drizzleOf(await fresh.context.database());
      await backdateLock(db, old, 100);
      await expireLock(db, gone);
      const stats = statsSchema.parse(
        await (await fresh.stats.GET(authorizedGet("/api/stats", CRON_SECRET))).json(),
      );
      expect(stats.activeLocks).toBe(3);
      expect(stats.expiredAwaitingPurge).toBe(1);
      expect(stats.byAgent).toEqual({ scheduling: 2, billing: 1 });
      expect(stats.oldestLockAgeSeconds).toBeGreaterThanOrEqual(100);
      expect(stats.oldestLockAgeSeconds).toBeLessThan(110);
      expect(stats.averageLockAgeSeconds).toBeGreaterThanOrEqual(100 / 3);
      expect(stats.averageLockAgeSeconds).toBeLessThan(110 / 3);
    } finally {
      await fresh.context.close();
    }
  });
});
