import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { batchedJsonLogger, jsonLogger } from "../lib/context.js";
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
    // Measured: more than the 0.01 ms it is rounded to, for a statement on the database.
    expect(routes.logs[0]?.durationMs).toBeGreaterThan(0);
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

describe("the stdout loggers", () => {
  /** What `log` writes to stdout, write by write, until `settle` resolves. */
  async function capture(log: () => void, settle: () => Promise<unknown>) {
    // Lines another test left pending go out first.
    await new Promise((resolve) => setImmediate(resolve));
    const writes: string[] = [];
    const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      log();
      const before = [...writes];
      await settle();
      return { before, writes };
    } finally {
      write.mockRestore();
    }
  }
  const records = (chunk: string | undefined) =>
    (chunk ?? "")
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line));

  it("jsonLogger writes each line at once, as a function must before it may be frozen", async () => {
    const { before } = await capture(
      () => {
        for (const n of [1, 2]) jsonLogger({ level: "info", msg: "now", n });
      },
      async () => {},
    );
    expect(before.map((chunk) => records(chunk)[0]?.n)).toEqual([1, 2]);
    expect(Date.parse(records(before[0])[0]?.time)).not.toBeNaN();
  });

  it("batchedJsonLogger writes the lines of one event-loop turn in one write, in order, at its end", async () => {
    const { before, writes } = await capture(
      () => {
        for (const n of [1, 2, 3]) batchedJsonLogger({ level: "info", msg: "turn one", n });
      },
      async () => {
        await new Promise((resolve) => setImmediate(resolve));
        batchedJsonLogger({ level: "warn", msg: "turn two" });
        await new Promise((resolve) => setImmediate(resolve));
      },
    );
    expect(before).toEqual([]);
    expect(writes).toHaveLength(2);
    expect(records(writes[0]).map((record) => record.n)).toEqual([1, 2, 3]);
    expect(records(writes[1])).toEqual([expect.objectContaining({ level: "warn", msg: "turn two" })]);
  });

  it("batchedJsonLogger writes what was logged before the process exits in the same turn", async () => {
    const context = new URL("../lib/context.ts", import.meta.url).href;
    const script = `
      import { batchedJsonLogger } from ${JSON.stringify(context)};
      batchedJsonLogger({ level: "info", msg: "first" });
      batchedJsonLogger({ level: "error", msg: "last words" });
      process.exit(3);`;
    const run = promisify(execFile)(process.execPath, [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      script,
    ]);
    const error = await run.then(
      () => undefined,
      (failure: { code: number; stdout: string }) => failure,
    );
    expect(error?.code).toBe(3);
    expect(records(error?.stdout).map((record) => record.msg)).toEqual(["first", "last words"]);
  });
});
