import { once } from "node:events";
import { existsSync } from "node:fs";
import { type AddressInfo, connect, createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { problemSchema } from "../lib/openapi.js";
import { startSilentServer } from "./client.fixtures.js";
import { type DevServer, spawnDev, startDevServer } from "./helpers/dev-server.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { migrationCount } from "./helpers/migrations.js";
import { unusedPort } from "./helpers/net.js";
import { newPgliteFolder } from "./helpers/pglite.js";
import { CRON_SECRET, newDeviceId } from "./helpers/routes.js";

describe.each(
  engines.filter((e) => e.name !== "neon"),
)("npm run dev over a real socket on $name", (engine) => {
  let database: TestDatabase | undefined;
  let server: DevServer;

  beforeAll(async () => {
    const vars: Record<string, string> = { PGLITE_DIR: "memory://" };
    if (engine.name === "pg") {
      database = await engine.open();
      vars.DATABASE_URL = database.url ?? "";
    }
    server = await startDevServer(vars);
  }, 60_000);
  afterAll(async () => {
    if (server) await server.kill("SIGINT");
    await database?.close();
  });

  it("says which database it uses and that migrations ran", async () => {
    expect(server.output()).toMatch(
      engine.name === "pg" ? /database: Postgres \(node-postgres\)/ : /embedded PGlite/,
    );
    expect(server.output()).toMatch(
      new RegExp(`migrations: \\d+ applied now, ${await migrationCount()} in all`),
    );
  });

  it("serves the README's session: read, acquire, refused acquire, conditional clear", async () => {
    const deviceId = newDeviceId();
    const headers = { "X-Device-ID": deviceId, "Content-Type": "application/json" };
    const url = `${server.url}/api/session-lock`;

    const read = await fetch(url, { headers });
    expect(read.status).toBe(200);
    expect((await read.json()).activeAgent).toBeNull();

    const body = JSON.stringify({ agent: "scheduling", ttlSeconds: 3600 });
    const acquired = await fetch(url, {
      method: "PUT",
      headers: { ...headers, "If-None-Match": "*" },
      body,
    });
    expect(acquired.status).toBe(200);
    const etag = acquired.headers.get("ETag") ?? "";
    expect(etag).toMatch(/^"\d+"$/);

    const refused = await fetch(url, {
      method: "PUT",
      headers: { ...headers, "If-None-Match": "*" },
      body: JSON.stringify({ agent: "billing" }),
    });
    expect(refused.status).toBe(412);
    expect(problemSchema.parse(await refused.json()).current?.activeAgent).toBe("scheduling");

    const cleared = await fetch(url, { method: "DELETE", headers: { ...headers, "If-Match": etag } });
    expect(await cleared.json()).toEqual({ deviceId, cleared: true });
  });

  it("routes every api/ file, the vercel.json rewrite, and answers 404 as a problem elsewhere", async () => {
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
    expect((await fetch(`${server.url}/api/openapi.json`)).status).toBe(200);
    const cron = await fetch(`${server.url}/api/cron/purge-expired`, {
      headers: { Authorization: `Bearer ${CRON_SECRET}` },
    });
    expect(cron.status).toBe(200);
    expect(await cron.json()).toMatchObject({ complete: true });
    const stats = await fetch(`${server.url}/api/stats`, {
      headers: { Authorization: `Bearer ${CRON_SECRET}` },
    });
    expect(stats.status).toBe(200);
    const missing = await fetch(`${server.url}/api/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("Content-Type")).toBe("application/problem+json");
  });

  it("stops cleanly on Ctrl-C, closing the database", async () => {
    const { code } = await server.kill("SIGINT");
    expect(code).toBe(0);
    expect(server.output()).toMatch(/SIGINT: closing the server and the database/);
  });
});

/** `npm run dev` for a run that ends on its own: its exit code, and what it wrote to stderr. */
function runDev(vars: Record<string, string>) {
  const child = spawnDev(vars);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  return {
    child,
    exited,
    exitCode: exited.then(([code]) => code),
    stdout: () => stdout,
    stderr: () => stderr,
  };
}

describe("npm run dev on a database that does not answer", () => {
  it("answers the requests that waited for it with 503, then exits with 1", async () => {
    const silent = await startSilentServer();
    const port = await unusedPort();
    try {
      const dev = runDev({
        PORT: String(port),
        DATABASE_URL: `postgres://postgres@${new URL(silent.url).host}/none`,
        DATABASE_CONNECT_TIMEOUT_MS: "1500",
      });
      // It listens before the migrations: a request now waits for the database.
      const answer = await vi.waitFor(
        () =>
          fetch(`http://127.0.0.1:${port}/api/session-lock`, {
            headers: { "X-Device-ID": newDeviceId() },
          }),
        { timeout: 10_000, interval: 50 },
      );
      expect(answer.status).toBe(503);
      expect(await answer.json()).toMatchObject({ code: "database_unavailable" });
      expect(await dev.exitCode).toBe(1);
      expect(dev.stderr()).toMatch(/timeout/i);
    } finally {
      await silent.close();
    }
  });
});

describe("npm run dev stopping", () => {
  it("closes on Ctrl-C while a client holds a request it never finishes", async () => {
    const dev = await startDevServer({ PGLITE_DIR: "memory://" });
    const { port } = new URL(dev.url);
    const stalled = connect(Number(port), "127.0.0.1");
    onTestFinished(() => {
      stalled.destroy();
    });
    await once(stalled, "connect");
    stalled.write("GET /api/health HTTP/1.1\r\nHost: localhost\r\n"); // no blank line: unfinished

    const stopped = dev.kill("SIGINT");
    const { code } = await vi.waitFor(() => stopped, { timeout: 10_000 });
    expect(code).toBe(0);
    expect(stalled.destroyed || stalled.readableEnded).toBe(true);
  });

  it("waits for the migrations on a Ctrl-C during the start, then closes the database", async () => {
    const pgliteDir = await newPgliteFolder("dev-start-");
    const port = await unusedPort();
    const dev = runDev({ PORT: String(port), PGLITE_DIR: pgliteDir });
    // The port opens before the database: a fresh folder then takes seconds to create and migrate.
    await vi.waitFor(
      () =>
        new Promise<void>((resolve, reject) => {
          const probe = connect(port, "127.0.0.1", () => {
            probe.destroy();
            resolve();
          }).on("error", reject);
        }),
      { timeout: 30_000, interval: 20 },
    );
    expect(dev.stdout()).not.toMatch(/listening/);
    dev.child.kill("SIGINT");

    const [code, signal] = await dev.exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(dev.stdout()).toMatch(/SIGINT: closing the server and the database/);
    expect(existsSync(`${pgliteDir}.lock`)).toBe(false);
  });
});

describe("two npm run dev on one embedded database", () => {
  it("stops the second with 1, naming the folder and the process that has it", async () => {
    const pgliteDir = await newPgliteFolder("dev-twice-");
    const first = await startDevServer({ PGLITE_DIR: pgliteDir });
    try {
      const second = runDev({ PORT: String(await unusedPort()), PGLITE_DIR: pgliteDir });
      expect(await second.exitCode).toBe(1);
      expect(second.stderr()).toContain(
        `The embedded database at ${pgliteDir} is in use by process ${first.child.pid}`,
      );
      const health = await fetch(`${first.url}/api/health`);
      expect(health.status).toBe(200);
    } finally {
      await first.kill("SIGINT");
    }
  });
});

describe("npm run dev with a bad environment", () => {
  it("exits with 1 and names the variable", async () => {
    const dev = runDev({ PORT: "http" });
    expect(await dev.exitCode).toBe(1);
    expect(dev.stderr()).toMatch(/PORT must be a whole number/);
  });

  it("exits with 1 on a port in use, says so, and leaves the embedded database alone", async () => {
    const taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    const { port } = taken.address() as AddressInfo;
    const pgliteDir = await newPgliteFolder("dev-port-");
    try {
      const dev = runDev({ PORT: String(port), PGLITE_DIR: pgliteDir });
      expect(await dev.exitCode).toBe(1);
      expect(dev.stderr().trim()).toBe(
        `Port ${port} is in use: stop what listens there, or set PORT to another.`,
      );
      // A second `npm run dev` must not open the first one's embedded database.
      expect(existsSync(pgliteDir)).toBe(false);
    } finally {
      taken.close();
    }
  });
});
