import { createServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../lib/db.js";
import { healthSchema } from "../lib/openapi.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { authorizedGet, bindRoutes } from "./helpers/routes.js";

describe.each(engines)("health on $name", (engine) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(() => database.close());

  it("answers 200 with the round trip's latency", async () => {
    const response = await bindRoutes(database).health.GET(authorizedGet("/api/health"));
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const body = healthSchema.parse(await response.json());
    expect(body.status).toBe("ok");
    // A real round trip, measured: above the 0.01 ms the value is rounded to.
    expect(body.status === "ok" && body.database.latencyMs).toBeGreaterThan(0);
  });
});

describe("health when the database does not answer", () => {
  it("answers 503 unavailable within HEALTH_TIMEOUT_MS on a silent network", async () => {
    // Accepts connections and never says a word: a database behind a black hole.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    const handle = await openDatabase({
      url: `postgres://postgres@127.0.0.1:${port}/x`,
      connectTimeoutMs: 10_000,
    });
    try {
      const routes = bindRoutes(handle, { HEALTH_TIMEOUT_MS: "300" });
      const startedAt = performance.now();
      const response = await routes.health.GET(authorizedGet("/api/health"));
      expect(performance.now() - startedAt).toBeLessThan(1500);
      expect(response.status).toBe(503);
      expect(response.headers.get("Retry-After")).toMatch(/^\d+$/);
      expect(await response.json()).toEqual({ status: "unavailable" });
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
      await handle.close().catch(() => {});
    }
  });
});
