import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { route as sessionLockRoute } from "../api/session-lock.js";
import { openDatabase } from "../lib/db.js";
import { ConfigError } from "../lib/env.js";
import { blankPglite, engines, type TestDatabase } from "./helpers/engines.js";
import { unusedPort } from "./helpers/net.js";
import { authorizedGet, bindRoutes, CRON_SECRET, lockRequest, newDeviceId } from "./helpers/routes.js";

describe.each(engines.slice(0, 1))("the OpenAPI document on $name", (engine) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(() => database.close());

  it("is a valid OpenAPI 3.1 document", async () => {
    const response = await bindRoutes(database).openapi.GET(authorizedGet("/api/openapi.json"));
    expect(response.status).toBe(200);
    const document = await response.json();
    const result = await new Validator().validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe("3.1.0");
  });

  it("describes the request body from the same schema the route parses with, limits included", async () => {
    const response = await bindRoutes(database, {
      MAX_SESSION_TTL: "900",
      DEFAULT_SESSION_TTL: "60",
    }).openapi.GET(authorizedGet("/api/openapi.json"));
    const { LockRequest } = (await response.json()).components.schemas;
    expect(LockRequest.required).toEqual(["agent"]);
    expect(LockRequest.additionalProperties).toBe(false);
    expect(LockRequest.properties.ttlSeconds).toMatchObject({ type: "integer", minimum: 1, maximum: 900 });
    expect(LockRequest.properties.agent.pattern).toBe("^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$");
  });
});

type Documented = {
  paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, unknown> }> }>>;
};

/** Headers the document leaves to HTTP and CORS, not to an operation. */
const UNDOCUMENTED_HEADERS = /^(content-type|content-length|vary|access-control-.*)$/;

describe.each(engines.slice(0, 1))("what the routes answer on $name", (engine) => {
  let database: TestDatabase;
  let document: Documented;
  beforeAll(async () => {
    database = await engine.open();
    const response = await bindRoutes(database).openapi.GET(authorizedGet("/api/openapi.json"));
    document = await response.json();
  });
  afterAll(() => database.close());

  /** Throws unless the document lists the answer's status for its path and method, and every header it sent. */
  function expectDocumented(path: string, method: string, response: Response) {
    const operation = document.paths[path]?.[method.toLowerCase()];
    const documented = operation?.responses[String(response.status)];
    expect(documented, `${method} ${path} ${response.status}`).toBeDefined();
    const names = Object.keys(documented?.headers ?? {}).map((name) => name.toLowerCase());
    const sent = [...response.headers.keys()].filter((name) => !UNDOCUMENTED_HEADERS.test(name));
    expect(
      sent.filter((name) => !names.includes(name)),
      `${method} ${path} ${response.status}`,
    ).toEqual([]);
  }

  it("documents every status and header of the session-lock route", async () => {
    const routes = bindRoutes(database, { CORS_ORIGINS: "https://chat.example.com" });
    const id = newDeviceId();
    const held = newDeviceId();
    const set = (deviceId: string, init: Parameters<typeof lockRequest>[2]) =>
      routes.sessionLock.PUT(lockRequest("PUT", deviceId, init));
    await set(held, { body: { agent: "billing" } });
    const answers: [string, Response][] = [
      ["GET", await routes.sessionLock.GET(lockRequest("GET", id))],
      ["GET", await routes.sessionLock.GET(lockRequest("GET", held))],
      ["HEAD", await routes.sessionLock.HEAD(lockRequest("HEAD", held))],
      ["GET", await routes.sessionLock.GET(lockRequest("GET", "not-a-uuid"))],
      ["PUT", await set(id, { body: { agent: "scheduling" } })],
      ["PUT", await set(held, { body: { agent: "scheduling" }, headers: { "If-None-Match": "*" } })],
      ["PUT", await set(id, { body: { agent: "x", extra: 1 } })],
      ["PUT", await set(id, { body: "{}", headers: { "Content-Type": "text/plain" } })],
      ["PUT", await set(id, { body: { agent: "a".repeat(5000) } })],
      [
        "DELETE",
        await routes.sessionLock.DELETE(lockRequest("DELETE", held, { headers: { "If-Match": '"0"' } })),
      ],
      ["DELETE", await routes.sessionLock.DELETE(lockRequest("DELETE", id))],
      [
        "OPTIONS",
        await routes.sessionLock.OPTIONS(
          lockRequest("OPTIONS", null, { headers: { Origin: "https://chat.example.com" } }),
        ),
      ],
    ];
    expect(answers.map(([method, response]) => `${method} ${response.status}`)).toEqual([
      "GET 200",
      "GET 200",
      "HEAD 200",
      "GET 400",
      "PUT 200",
      "PUT 412",
      "PUT 400",
      "PUT 415",
      "PUT 413",
      "DELETE 412",
      "DELETE 200",
      "OPTIONS 204",
    ]);
    for (const [method, response] of answers) expectDocumented("/api/session-lock", method, response);
  });

  it("documents every status and header of the cron, stats, health and openapi routes", async () => {
    const routes = bindRoutes(database);
    const unsecured = bindRoutes(database, { CRON_SECRET: "short" });
    const answers: [string, string, Response][] = [
      ["/api/cron/purge-expired", "GET", await routes.cron.GET(authorizedGet("/", CRON_SECRET))],
      ["/api/cron/purge-expired", "GET", await routes.cron.GET(authorizedGet("/"))],
      ["/api/cron/purge-expired", "GET", await unsecured.cron.GET(authorizedGet("/", "short"))],
      ["/api/stats", "GET", await routes.stats.GET(authorizedGet("/", CRON_SECRET))],
      ["/api/stats", "HEAD", await routes.stats.HEAD(authorizedGet("/", CRON_SECRET))],
      ["/api/stats", "GET", await routes.stats.GET(authorizedGet("/", "wrong-secret-0123456789"))],
      ["/api/health", "GET", await routes.health.GET(authorizedGet("/"))],
      ["/api/health", "HEAD", await routes.health.HEAD(authorizedGet("/"))],
      ["/api/openapi.json", "GET", await routes.openapi.GET(authorizedGet("/"))],
      ["/api/openapi.json", "OPTIONS", await routes.openapi.OPTIONS(authorizedGet("/"))],
    ];
    expect(answers.map(([, method, response]) => `${method} ${response.status}`)).toEqual([
      "GET 200",
      "GET 401",
      "GET 500",
      "GET 200",
      "HEAD 200",
      "GET 401",
      "GET 200",
      "HEAD 200",
      "GET 200",
      "OPTIONS 204",
    ]);
    for (const [path, method, response] of answers) expectDocumented(path, method, response);
  });

  it("documents the 500 of every method when the environment is bad", async () => {
    const routes = sessionLockRoute(() => {
      throw new ConfigError("Invalid environment: MAX_SESSION_TTL must be a whole number");
    });
    for (const method of ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] as const) {
      const response = await routes[method](lockRequest(method, newDeviceId()));
      expect(response.status, method).toBe(500);
      expectDocumented("/api/session-lock", method, response);
    }
  });

  it("documents the answers of a database that cannot be reached and of one never migrated", async () => {
    const down = await openDatabase({ url: `postgres://postgres@127.0.0.1:${await unusedPort()}/x` });
    const blank = await blankPglite();
    onTestFinished(async () => {
      await down.close().catch(() => {});
      await blank.close();
    });
    const answers: [string, string, Response][] = [];
    for (const handle of [down, blank]) {
      const routes = bindRoutes(handle);
      answers.push(
        ["/api/session-lock", "GET", await routes.sessionLock.GET(lockRequest("GET", newDeviceId()))],
        ["/api/cron/purge-expired", "GET", await routes.cron.GET(authorizedGet("/", CRON_SECRET))],
        ["/api/stats", "GET", await routes.stats.GET(authorizedGet("/", CRON_SECRET))],
      );
    }
    const health = bindRoutes(down, { HEALTH_TIMEOUT_MS: "300" });
    answers.push(["/api/health", "GET", await health.health.GET(authorizedGet("/"))]);
    expect(answers.map(([, , response]) => response.status)).toEqual([503, 503, 503, 500, 500, 500, 503]);
    for (const [path, method, response] of answers) expectDocumented(path, method, response);
  });
});
