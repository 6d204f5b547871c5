import * as fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnv } from "../lib/env.js";
import { problemSchema } from "../lib/openapi.js";
import { describeDatabase } from "../scripts/describe-database.js";
import { engines, type TestDatabase } from "./helpers/engines.js";
import { fcParams } from "./helpers/fc.js";
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
 * The cron secret beyond test/cron.auth.test.ts: the comparison cannot be timed here, so this pins
 * what a constant-time compare of digests must give, that every secret but the exact one is
 * refused whatever its length or closeness (a length check or a prefix compare would let some
 * through), that a refusal reveals nothing of the secret, and the 16-character floor.
 */
describe.each(engines.slice(0, 1))("the cron secret on $name", (engine) => {
  let database: TestDatabase;
  let routes: Routes;
  const expiredDevice = newDeviceId();

  beforeAll(async () => {
    database = await engine.open();
    routes = bindRoutes(database);
    await routes.sessionLock.PUT(lockRequest("PUT", expiredDevice, { body: { agent: "scheduling" } }));
    await expireLock(database.db, expiredDevice);
  });
  afterAll(() => database?.close());

  const call = (route: "cron" | "stats", authorization: string | null, handlers: Routes = routes) =>
    handlers[route].GET(
      new Request(`http://localhost/api/${route === "cron" ? "cron/purge-expired" : "stats"}`, {
        headers: authorization === null ? {} : { Authorization: authorization },
      }),
    );

  /** Refused with 401 on both routes, with nothing about the secret in the answer, and nothing purged. */
  async function expectRefused(authorization: string): Promise<void> {
    const before = await snapshot(database.db);
    for (const route of ["cron", "stats"] as const) {
      const response = await call(route, authorization);
      expect({ route, authorization, status: response.status }).toEqual({
        route,
        authorization,
        status: 401,
      });
      expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
      const text = await response.text();
      expect(problemSchema.parse(JSON.parse(text)).code).toBe("unauthorized");
      // Nothing that helps guess it: not the secret, not its start, not its length.
      expect(text).not.toContain(CRON_SECRET.slice(0, 6));
      expect(text).not.toContain(String(CRON_SECRET.length));
    }
    expect((await snapshot(database.db)).rows).toBe(before.rows);
  }

  const nearMisses: [string, string][] = [
    ...Array.from({ length: CRON_SECRET.length }, (_, at): [string, string] => {
      const flipped = String.fromCharCode(CRON_SECRET.charCodeAt(at) ^ 1);
      return [
        `one character changed at ${at}`,
        `${CRON_SECRET.slice(0, at)}${flipped}${CRON_SECRET.slice(at + 1)}`,
      ];
    }),
    ["missing its last character", CRON_SECRET.slice(0, -1)],
    ["missing its first character", CRON_SECRET.slice(1)],
    ["with one more character", `${CRON_SECRET}0`],
    ["with a character in front", `0${CRON_SECRET}`],
    ["twice", `${CRON_SECRET}${CRON_SECRET}`],
    ["in upper case", CRON_SECRET.toUpperCase()],
    ["with a NUL after it", `${CRON_SECRET}\u0001`],
    ["its first half", CRON_SECRET.slice(0, CRON_SECRET.length / 2)],
  ];

  it.each(nearMisses)("refuses the secret %s", async (_name, secret) => {
    await expectRefused(`Bearer ${secret}`);
  });

  it.each([0, 1, 15, 16, 17, 64, 1024, 65_536])("refuses a wrong secret of %i characters", async (length) => {
    await expectRefused(`Bearer ${"s".repeat(length)}`);
  });

  it.each([
    ["another scheme", `Basic ${CRON_SECRET}`],
    ["no space after the scheme", `Bearer${CRON_SECRET}`],
    ["no scheme", CRON_SECRET],
    ["the scheme only", "Bearer"],
    ["a second credential", `Bearer ${CRON_SECRET}, Bearer ${CRON_SECRET}`],
  ])("refuses %s", async (_name, authorization) => {
    await expectRefused(authorization);
  });

  it("refuses every other Authorization value (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.string({ maxLength: 40 }).map((s) => `Bearer ${s}`),
          fc
            .tuple(fc.nat(CRON_SECRET.length), fc.string({ minLength: 1, maxLength: 3 }))
            .map(([at, s]) => `Bearer ${CRON_SECRET.slice(0, at)}${s}${CRON_SECRET.slice(at)}`),
        ),
        async (authorization) => {
          fc.pre(!authorizesCron(authorization));
          for (const route of ["cron", "stats"] as const) {
            expect((await call(route, authorization)).status).toBe(401);
          }
        },
      ),
      fcParams(200),
    );
  });

  it("accepts exactly the secret, on both routes, after the scheme in any case", async () => {
    for (const scheme of ["Bearer ", "bearer ", "BEARER ", "Bearer  "]) {
      for (const route of ["cron", "stats"] as const) {
        expect({ scheme, route, status: (await call(route, `${scheme}${CRON_SECRET}`)).status }).toEqual({
          scheme,
          route,
          status: 200,
        });
      }
    }
  });

  it("runs with a secret of exactly 16 characters and refuses to run with 15, even when it is sent", async () => {
    const sixteen = "0123456789abcdef";
    const atFloor = bindRoutes(database, { CRON_SECRET: sixteen });
    expect((await call("stats", `Bearer ${sixteen}`, atFloor)).status).toBe(200);
    expect((await call("stats", `Bearer ${sixteen.slice(0, 15)}`, atFloor)).status).toBe(401);

    const fifteen = sixteen.slice(0, 15);
    const belowFloor = bindRoutes(database, { CRON_SECRET: fifteen });
    for (const route of ["cron", "stats"] as const) {
      const response = await call(route, `Bearer ${fifteen}`, belowFloor);
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(problemSchema.parse(JSON.parse(text)).code).toBe("misconfigured");
      expect(text).not.toContain(fifteen);
    }
  });
});

describe("the database line npm run dev prints", () => {
  it("masks every password node-postgres reads from the URL, and keeps the rest", () => {
    const env = parseEnv({
      DATABASE_URL:
        "postgres://app:in-userinfo@db.example.com:5432/locks?password=in-query&sslpassword=for-key&sslmode=require",
    });
    const line = describeDatabase(env, "pg");
    for (const secret of ["in-userinfo", "in-query", "for-key"]) expect(line).not.toContain(secret);
    expect(line).toBe(
      "Postgres (node-postgres) at postgres://app:****@db.example.com:5432/locks?password=****&sslpassword=****&sslmode=require",
    );
  });
});
