import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DevServer, startDevServer } from "../helpers/dev-server.js";
import { networkEngines, type TestDatabase } from "../helpers/engines.js";
import { reroute } from "../helpers/net.js";
import { CRON_SECRET, newDeviceId } from "../helpers/routes.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

/**
 * The whole process through database faults: `npm run dev` on Postgres reached through a TCP proxy,
 * with the environment's default timeouts (connect 3 s, query 5 s, health 2 s). Bursts larger than
 * the pool meet a refusing and then a silent database: every request answers 503 within the bound,
 * the process survives (no crash, no unhandled rejection in its output), and once the database is
 * back the same process serves 200 again. Needs TEST_DATABASE_URL (node-postgres; the Neon path is
 * covered in-process by test/faults.database.test.ts).
 */
const pg = networkEngines.find((engine) => engine.name === "pg");
const BURST = 20;

describe.skipIf(!pg)("npm run dev through database faults on Postgres", () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let server: DevServer;
  const held = newDeviceId();

  beforeAll(async () => {
    database = (await pg?.open()) as TestDatabase;
    const target = new URL(inject("testServer")?.adminUrl ?? "postgres://127.0.0.1");
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    server = await startDevServer({ DATABASE_URL: reroute(database.url ?? "", proxy) });
  });
  afterAll(async () => {
    await server?.kill("SIGKILL");
    await proxy?.close();
    await database?.close();
  });

  const lockUrl = () => `${server.url}/api/session-lock`;
  const timed = async (request: () => Promise<Response>) => {
    const startedAt = performance.now();
    const response = await request();
    return { response, elapsedMs: performance.now() - startedAt, body: await response.json() };
  };
  const burst = () =>
    Promise.all(
      Array.from({ length: BURST }, (_, i) =>
        timed(() =>
          i % 4 === 3
            ? fetch(`${server.url}/api/health`)
            : i % 2 === 0
              ? fetch(lockUrl(), { headers: { "X-Device-ID": held } })
              : fetch(lockUrl(), {
                  method: "PUT",
                  headers: { "X-Device-ID": newDeviceId(), "Content-Type": "application/json" },
                  body: JSON.stringify({ agent: "billing" }),
                }),
        ),
      ),
    );

  async function expectRecovered() {
    const answers = await burst();
    for (const { response } of answers) expect(response.status).toBe(200);
    const read = await (await fetch(lockUrl(), { headers: { "X-Device-ID": held } })).json();
    expect(read.activeAgent).toBe("scheduling");
    const cron = await fetch(`${server.url}/api/cron/purge-expired`, {
      headers: { Authorization: `Bearer ${CRON_SECRET}` },
    });
    expect(cron.status).toBe(200);
  }

  it("answers every request of a burst with 503 in bounded time, survives, and recovers", async () => {
    const put = await fetch(lockUrl(), {
      method: "PUT",
      headers: { "X-Device-ID": held, "Content-Type": "application/json" },
      body: JSON.stringify({ agent: "scheduling", ttlSeconds: 3600 }),
    });
    expect(put.status).toBe(200);
    await expectRecovered();

    for (const [mode, boundMs] of [
      ["refuse", 3000],
      ["blackhole", 6000],
      ["refuse", 3000],
    ] as const) {
      await proxy.setMode(mode);
      const answers = await burst();
      for (const { response, elapsedMs, body } of answers) {
        expect({ mode, status: response.status }).toEqual({ mode, status: 503 });
        expect(elapsedMs, `${mode}: answered within ${boundMs} ms`).toBeLessThan(boundMs);
        expect(response.headers.get("Retry-After")).toMatch(/^\d+$/);
        expect(body.code ?? body.status).toMatch(/^(database_unavailable|unavailable)$/);
      }
      expect(server.alive()).toBe(true);
      await proxy.setMode("forward");
      // A moment for the pool to see the resets of its idle connections, as after any outage.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await expectRecovered();
    }

    expect(server.alive()).toBe(true);
    expect(server.output()).not.toMatch(/Unhandled|uncaught|ERR_UNHANDLED_REJECTION|\n\s+at /i);
  }, 90_000);
});
