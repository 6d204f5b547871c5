import * as fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { fcParams } from "./helpers/fc.js";
import { bindRoutes, lockRequest, newDeviceId, type Routes } from "./helpers/routes.js";

const ALLOWED = ["https://chat.example.com", "http://localhost:5173"];

/** Origins that look like an allowed one: substrings, prefixes, suffixes, other schemes and ports. */
const lookalikeArb = fc.oneof(
  fc
    .tuple(fc.constantFrom(...ALLOWED), fc.nat(40), fc.nat(40))
    .map(([origin, from, to]) => origin.slice(Math.min(from, to), Math.max(from, to))),
  fc
    .tuple(fc.constantFrom(...ALLOWED), fc.string({ minLength: 1, maxLength: 12 }))
    .map(([origin, s]) => `${origin}${s}`),
  fc
    .tuple(fc.constantFrom(...ALLOWED), fc.string({ minLength: 1, maxLength: 12 }))
    .map(([origin, s]) => `${s}${origin}`),
  fc.constantFrom(
    "http://chat.example.com",
    "https://chat.example.com:443",
    "https://chat.example.com.",
    "https://CHAT.EXAMPLE.COM",
    "https://chat.example.com/",
    "https://evil.com?https://chat.example.com",
    "null",
    ALLOWED.join(","),
    ALLOWED.join(", "),
    "*",
  ),
  fc.webUrl().map((url) => new URL(url).origin),
);

/**
 * CORS beyond test/cors.test.ts: whatever the origin, only an exact configured one gets
 * `Access-Control-Allow-Origin` (a substring or prefix match of the list would let lookalikes in),
 * credentials are never allowed, and preflights never offer methods outside the contract.
 */
describe.each(engines.slice(0, 1))("CORS origins on $name", (engine) => {
  let database: TestDatabase;
  let routes: Routes;
  beforeAll(async () => {
    database = await engine.open();
    routes = bindRoutes(database, { CORS_ORIGINS: ALLOWED.join(",") });
  });
  afterAll(() => database?.close());

  it("gives CORS headers to exactly the configured origins, on preflights, reads and errors", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(lookalikeArb, fc.constantFrom(...ALLOWED)),
        fc.constantFrom("OPTIONS", "GET", "PUT"),
        async (origin, method) => {
          const headers = { Origin: origin, "Access-Control-Request-Method": "PUT" };
          const request =
            method === "PUT"
              ? lockRequest("PUT", "not-a-uuid", { body: { agent: "a" }, headers })
              : lockRequest(method, newDeviceId(), { headers });
          const response = await routes.sessionLock[method](request);
          // A header's value excludes surrounding whitespace (RFC 9110 5.5; Fetch strips it): the
          // origin the server sees is the trimmed one.
          const sent = origin.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
          const allowed = ALLOWED.includes(sent);
          expect(response.headers.get("Access-Control-Allow-Origin")).toBe(allowed ? sent : null);
          expect(response.headers.get("Access-Control-Allow-Credentials")).toBeNull();
          expect(response.headers.get("Vary")).toContain("Origin");
          const methods = response.headers.get("Access-Control-Allow-Methods");
          if (methods !== null) {
            expect(
              methods.split(", ").every((m) => ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].includes(m)),
            ).toBe(true);
          }
        },
      ),
      fcParams(200),
    );
  });
});
