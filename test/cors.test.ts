import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { bindRoutes, lockRequest, newDeviceId } from "./helpers/routes.js";

const CHAT = "https://chat.example.com";
const preflight = (origin: string) =>
  lockRequest("OPTIONS", null, {
    headers: {
      Origin: origin,
      "Access-Control-Request-Method": "PUT",
      "Access-Control-Request-Headers": "x-device-id",
    },
  });

describe.each(engines.slice(0, 1))("CORS on $name", (engine) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(() => database.close());

  it("answers a preflight from an allowed origin with 204 and the allow headers", async () => {
    const routes = bindRoutes(database, { CORS_ORIGINS: `${CHAT}, http://localhost:5173` });
    const response = await routes.sessionLock.OPTIONS(preflight(CHAT));
    expect(response.status).toBe(204);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe(CHAT);
    expect(response.headers.get("Access-Control-Allow-Methods")).toBe("GET, PUT, DELETE, OPTIONS");
    expect(response.headers.get("Access-Control-Allow-Headers")).toBe(
      "X-Device-ID, Content-Type, If-Match, If-None-Match",
    );
    expect(Number(response.headers.get("Access-Control-Max-Age"))).toBeGreaterThan(0);
    expect(response.headers.get("Vary")).toContain("Origin");
  });

  it("gives actual responses, errors included, Allow-Origin, the headers a page may read and Vary: Origin", async () => {
    const routes = bindRoutes(database, { CORS_ORIGINS: CHAT });
    for (const request of [
      lockRequest("PUT", newDeviceId(), { body: { agent: "a" }, headers: { Origin: CHAT } }),
      lockRequest("GET", "not-a-uuid", { headers: { Origin: CHAT } }),
    ]) {
      const response = await routes.sessionLock[request.method as "GET"](request);
      expect(response.headers.get("Access-Control-Allow-Origin")).toBe(CHAT);
      expect(response.headers.get("Access-Control-Expose-Headers")).toBe(
        "ETag, Retry-After, Date, X-Request-Id",
      );
      expect(response.headers.get("Vary")).toContain("Origin");
    }
  });

  it("gives another origin no CORS headers", async () => {
    const routes = bindRoutes(database, { CORS_ORIGINS: CHAT });
    const evil = "https://evil.example.com";
    const pre = await routes.sessionLock.OPTIONS(preflight(evil));
    expect(pre.status).toBe(204);
    expect(pre.headers.get("Access-Control-Allow-Origin")).toBeNull();
    expect(pre.headers.get("Access-Control-Allow-Methods")).toBeNull();
    const actual = await routes.sessionLock.GET(
      lockRequest("GET", newDeviceId(), { headers: { Origin: evil } }),
    );
    expect(actual.headers.get("Access-Control-Allow-Origin")).toBeNull();
    // An origin that only starts like an allowed one is another origin.
    const lookalike = await routes.sessionLock.OPTIONS(preflight(`${CHAT}.evil.com`));
    expect(lookalike.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("allows an origin configured with capitals or its default port, as the browser sends it", async () => {
    const routes = bindRoutes(database, {
      CORS_ORIGINS: "https://Chat.Example.com:443, http://LOCALHOST:80",
    });
    for (const origin of [CHAT, "http://localhost"]) {
      const response = await routes.sessionLock.OPTIONS(preflight(origin));
      expect(response.headers.get("Access-Control-Allow-Origin")).toBe(origin);
    }
  });

  it("gives no cross-origin access at all when CORS_ORIGINS is unset", async () => {
    const routes = bindRoutes(database);
    const response = await routes.sessionLock.OPTIONS(preflight(CHAT));
    expect(response.headers.get("Access-Control-Allow-Origin")).toBeNull();
    expect(response.headers.get("Vary")).toBeNull();
  });

  it("allows any origin, echoing it, with CORS_ORIGINS=*", async () => {
    const routes = bindRoutes(database, { CORS_ORIGINS: "*" });
    const response = await routes.sessionLock.OPTIONS(preflight("http://localhost:8080"));
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe("http://localhost:8080");
  });
});
