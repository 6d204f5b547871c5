import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { route as sessionLockRoute } from "../api/session-lock.js";
import { createContext } from "../lib/context.js";
import { openDatabase } from "../lib/db.js";
import { parseEnv } from "../lib/env.js";
import { problemSchema } from "../lib/openapi.js";
import { blankPglite, engines, networkEngines, type TestDatabase } from "./helpers/engines.js";
import { bindRoutes, lockRequest, newDeviceId, type Routes } from "./helpers/routes.js";
import { startTcpProxy } from "./helpers/tcp-proxy.js";

/** Reads a problem response, checking its shape and that it leaks no stack or SQL. */
async function problemOf(response: Response) {
  expect(response.headers.get("Content-Type")).toBe("application/problem+json");
  expect(response.headers.get("Cache-Control")).toBe("no-store");
  const text = await response.text();
  expect(text).not.toMatch(/\n\s+at |\bselect\b|\binsert\b|\bdelete from\b|conversation_states/i);
  const problem = problemSchema.parse(JSON.parse(text));
  expect(problem.status).toBe(response.status);
  return problem;
}

describe.each(engines)("session-lock errors on $name", (engine) => {
  let database: TestDatabase;
  let routes: Routes;

  beforeAll(async () => {
    database = await engine.open();
    routes = bindRoutes(database, {
      DEFAULT_SESSION_TTL: "600",
      MAX_SESSION_TTL: "3600",
      ALLOWED_AGENTS: "scheduling,billing",
    });
  });
  afterAll(() => database.close());

  const call = (request: Request) => routes.sessionLock[request.method as "GET"](request);
  const activeAgent = async (deviceId: string) =>
    (await (await call(lockRequest("GET", deviceId))).json()).activeAgent;

  const uuid = "7d4f1c2e-9a0b-4c3d-8e5f-0a1b2c3d4e5f";
  it.each([
    ["missing", null],
    ["empty", ""],
    ["the nil UUID", "00000000-0000-0000-0000-000000000000"],
    ["braces", `{${uuid}}`],
    ["a urn", `urn:uuid:${uuid}`],
    ["no hyphens", uuid.replaceAll("-", "")],
    ["two ids", `${uuid}, ${crypto.randomUUID()}`],
    ["a non-hex digit", `${uuid.slice(0, -1)}g`],
    ["one digit short", uuid.slice(0, -1)],
    ["SQL", "'; drop table conversation_states; --"],
  ])("rejects a device id that is %s with 400 invalid_device_id on every method", async (_name, id) => {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const response = await call(
        lockRequest(method, id, method === "PUT" ? { body: { agent: "billing" } } : {}),
      );
      expect(response.status).toBe(400);
      expect((await problemOf(response)).code).toBe("invalid_device_id");
    }
  });

  it.each([
    ["no Content-Type", { "Content-Type": "" }],
    ["text/plain", { "Content-Type": "text/plain" }],
    ["form data", { "Content-Type": "application/x-www-form-urlencoded" }],
  ])("answers 415 for a body sent as %s", async (_name, headers) => {
    const deviceId = newDeviceId();
    const request = new Request("http://localhost/api/session-lock", {
      method: "PUT",
      headers: { "X-Device-ID": deviceId, ...headers },
      body: JSON.stringify({ agent: "billing" }),
    });
    if (headers["Content-Type"] === "") request.headers.delete("Content-Type");
    const response = await call(request);
    expect(response.status).toBe(415);
    expect((await problemOf(response)).code).toBe("unsupported_media_type");
    expect(await activeAgent(deviceId)).toBeNull();
  });

  it("accepts application/json with a charset", async () => {
    const deviceId = newDeviceId();
    const response = await call(
      lockRequest("PUT", deviceId, {
        body: { agent: "billing" },
        headers: { "Content-Type": "application/json; charset=utf-8" },
      }),
    );
    expect(response.status).toBe(200);
  });

  it("answers 413 for a body over 4 KiB, declared, understated or streamed, and changes nothing", async () => {
    const deviceId = newDeviceId();
    const big = JSON.stringify({ agent: "billing", padding: "x".repeat(5000) });
    // Declared as HTTP declares it (an in-process Request carries no Content-Length of its own),
    // over the limit: refused on the header alone, the small body behind it never read.
    const declaredRequest = lockRequest("PUT", deviceId, {
      body: '{"agent":"billing"}',
      headers: { "Content-Length": "5000" },
    });
    const declared = await call(declaredRequest);
    expect(declaredRequest.bodyUsed).toBe(false);
    expect(declared.status).toBe(413);
    expect((await problemOf(declared)).code).toBe("payload_too_large");

    // A Content-Length that understates the body does not let it through.
    const understated = lockRequest("PUT", deviceId, { body: big });
    understated.headers.set("Content-Length", "10");
    expect((await call(understated)).status).toBe(413);

    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode(" ".repeat(1000)));
        controller.close();
      },
    });
    const streamed = await call(
      new Request("http://localhost/api/session-lock", {
        method: "PUT",
        headers: { "X-Device-ID": deviceId, "Content-Type": "application/json" },
        body: stream,
        duplex: "half",
      } as RequestInit),
    );
    expect(streamed.status).toBe(413);
    expect(await activeAgent(deviceId)).toBeNull();
  });

  it.each([
    ["not JSON", "{agent: scheduling}", []],
    ["empty", "", []],
    ["an array", "[]", ["(body)"]],
    ["null", "null", ["(body)"]],
    ["missing agent", { ttlSeconds: 60 }, ["agent"]],
    ["agent a number", { agent: 42 }, ["agent"]],
    ["agent empty", { agent: "" }, ["agent"]],
    ["agent starting with a dash", { agent: "-x" }, ["agent"]],
    ["agent with a space", { agent: "a b" }, ["agent"]],
    ["agent of 51 characters", { agent: "a".repeat(51) }, ["agent"]],
    ["ttlSeconds 0", { agent: "billing", ttlSeconds: 0 }, ["ttlSeconds"]],
    ["ttlSeconds negative", { agent: "billing", ttlSeconds: -5 }, ["ttlSeconds"]],
    ["ttlSeconds fractional", { agent: "billing", ttlSeconds: 1.5 }, ["ttlSeconds"]],
    ["ttlSeconds a string", { agent: "billing", ttlSeconds: "60" }, ["ttlSeconds"]],
    ["ttlSeconds over MAX_SESSION_TTL", { agent: "billing", ttlSeconds: 3601 }, ["ttlSeconds"]],
    ["unknown keys", { agent: "billing", owner: "x", extra: 1 }, ["owner", "extra"]],
    ["several failures", { agent: 1, ttlSeconds: 0 }, ["agent", "ttlSeconds"]],
  ])("answers 400 invalid_body naming the fields for %s, and changes nothing", async (_name, body, fields) => {
    const deviceId = newDeviceId();
    const response = await call(lockRequest("PUT", deviceId, { body }));
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.code).toBe("invalid_body");
    // A body that is no JSON names no field; one that is no object, the body itself.
    expect(problem.fields?.map((f) => f.field)).toEqual(fields);
    for (const field of fields) expect(problem.detail).toContain(`${field}: `);
    expect(await activeAgent(deviceId)).toBeNull();
  });

  it("answers 400 agent_not_allowed for a valid name outside ALLOWED_AGENTS, and changes nothing", async () => {
    const deviceId = newDeviceId();
    const response = await call(lockRequest("PUT", deviceId, { body: { agent: "marketing" } }));
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(problem.code).toBe("agent_not_allowed");
    expect(problem.detail).toContain("marketing");
    expect(await activeAgent(deviceId)).toBeNull();
  });

  it.each(["POST", "PATCH"] as const)("answers %s with 405 and Allow", async (method) => {
    const response = await routes.sessionLock[method](lockRequest(method, newDeviceId()));
    expect(response.status).toBe(405);
    expect(response.headers.get("Allow")).toBe("GET, HEAD, PUT, DELETE, OPTIONS");
    expect((await problemOf(response)).code).toBe("method_not_allowed");
  });
});

describe("session-lock when the database fails", () => {
  it("answers 503 database_unavailable with Retry-After when the connection is refused, without waiting out a timeout", async () => {
    const handle = await openDatabase({ url: "postgres://postgres@127.0.0.1:1/none", connectTimeoutMs: 500 });
    const routes = bindRoutes(handle);
    try {
      const startedAt = performance.now();
      const response = await routes.sessionLock.GET(lockRequest("GET", newDeviceId()));
      expect(performance.now() - startedAt).toBeLessThan(3000);
      expect(response.status).toBe(503);
      expect(response.headers.get("Retry-After")).toMatch(/^\d+$/);
      expect((await problemOf(response)).code).toBe("database_unavailable");
      expect(routes.logs.some((r) => r.level === "warn" && r.msg === "database unavailable")).toBe(true);
    } finally {
      await handle.close();
    }
  });

  it("answers 503 database_unavailable on the Neon driver too, whose failures are WebSocket events", async () => {
    // No WebSocket proxy listens there: the socket fails with an ErrorEvent, not an Error.
    const handle = await openDatabase({
      url: "postgres://postgres@127.0.0.1:1/none",
      driver: "neon",
      connectTimeoutMs: 1000,
      neon: { wsProxy: () => "127.0.0.1:1/v2", useSecureWebSocket: false },
    });
    const routes = bindRoutes(handle);
    try {
      const response = await routes.sessionLock.GET(lockRequest("GET", newDeviceId()));
      expect(response.status).toBe(503);
      expect((await problemOf(response)).code).toBe("database_unavailable");
    } finally {
      await handle.close().catch(() => {});
    }
  });

  it("answers 500 internal_error without details for a statement that fails, and logs them", async () => {
    // A database without the migrations: every statement fails with "relation does not exist".
    const handle = await blankPglite();
    const routes = bindRoutes(handle);
    try {
      const response = await routes.sessionLock.GET(lockRequest("GET", newDeviceId()));
      expect(response.status).toBe(500);
      const problem = await problemOf(response);
      expect(problem.code).toBe("internal_error");
      expect(problem.detail).toContain(response.headers.get("X-Request-Id"));
      const logged = routes.logs.find((r) => r.level === "error");
      expect(String(logged?.error)).toMatch(/does not exist/);
      expect(logged?.requestId).toBe(response.headers.get("X-Request-Id"));
    } finally {
      await handle.close();
    }
  });

  it("answers 500 misconfigured naming the variable when the environment is invalid", async () => {
    const handlers = sessionLockRoute(() => createContext(parseEnv({ DEFAULT_SESSION_TTL: "soon" })));
    const response = await handlers.GET(lockRequest("GET", newDeviceId()));
    expect(response.status).toBe(500);
    const problem = await problemOf(response);
    expect(problem.code).toBe("misconfigured");
    expect(problem.detail).toContain("DEFAULT_SESSION_TTL");
  });
});

describe.each(networkEngines)("session-lock through a failing network on $name", (engine) => {
  it("answers 503 while the database refuses, and works again once it is back, without a restart", async () => {
    const server = await engine.open();
    const target = new URL(server.url ?? "");
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const database = await engine.open({ via: proxy, connectTimeoutMs: 1000, queryTimeoutMs: 1500 });
    const routes = bindRoutes(database);
    try {
      const deviceId = newDeviceId();
      expect(
        (await routes.sessionLock.PUT(lockRequest("PUT", deviceId, { body: { agent: "a" } }))).status,
      ).toBe(200);
      await proxy.setMode("refuse");
      const down = await routes.sessionLock.GET(lockRequest("GET", deviceId));
      expect(down.status).toBe(503);
      expect((await problemOf(down)).code).toBe("database_unavailable");
      await proxy.setMode("forward");
      const back = await routes.sessionLock.GET(lockRequest("GET", deviceId));
      expect(back.status).toBe(200);
      expect((await back.json()).activeAgent).toBe("a");
    } finally {
      await database.close();
      await proxy.close();
      await server.close();
    }
  });
});
