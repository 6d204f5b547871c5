import { spawn } from "node:child_process";
import { once } from "node:events";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { chooseDriver, isDatabaseUnavailable } from "../lib/db.js";
import { engines, type TestDatabase } from "./helpers/engines.js";

describe("chooseDriver", () => {
  it.each([
    ["no URL", undefined, "pglite"],
    [
      "a Neon host",
      "postgres://u:p@ep-quiet-lake-123456.eu-central-1.aws.neon.tech/app?sslmode=require",
      "neon",
    ],
    [
      "a Neon pooler host",
      "postgresql://u:p@ep-quiet-lake-123456-pooler.us-east-2.aws.neon.tech/app",
      "neon",
    ],
    ["localhost", "postgres://postgres@127.0.0.1:5432/test", "pg"],
    ["a host that only contains neon.tech", "postgres://u:p@neon.tech.example.com/app", "pg"],
    ["a host that ends in neon.tech without the dot", "postgres://u:p@notneon.tech/app", "pg"],
    ["another cloud", "postgres://u:p@db.abcdefgh.supabase.co:5432/postgres", "pg"],
    ["a socket in place of a host", "postgres://u:p@/app?host=/cloudsql/project:region:instance", "pg"],
  ] as const)("picks the right driver for %s", (_, url, driver) => {
    expect(chooseDriver({ url })).toBe(driver);
  });

  it("lets an explicit driver win over the URL", () => {
    expect(chooseDriver({ url: "postgres://postgres@127.0.0.1:5432/test", driver: "neon" })).toBe("neon");
    expect(chooseDriver({ url: "postgres://u:p@ep-x.aws.neon.tech/app", driver: "pg" })).toBe("pg");
  });
});

describe("errors of the connection itself", () => {
  // Node's system errors carry a code of a SQLSTATE's shape (EPIPE): it is no answer of the server.
  it("counts a broken pipe (EPIPE) as the database being unavailable", async () => {
    // A reader that has closed its end of the pipe, and says so.
    const child = spawn("sh", ["-c", "exec 0<&-; echo closed; sleep 10"], {
      stdio: ["pipe", "pipe", "ignore"],
    });
    onTestFinished(() => {
      child.kill();
    });
    await once(child.stdout, "data");
    const failed = once(child.stdin, "error");
    child.stdin.write("a query");
    const [error] = await failed;

    expect(error).toMatchObject({ code: "EPIPE" });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });
});

describe.each(engines)("errors that are not unavailability on $name", (engine) => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(async () => {
    await database?.close();
  });

  it.each([
    ["division by zero", sql`select 1 / 0`],
    ["a syntax error", sql`selec 1`],
    ["an unknown table", sql`select * from no_such_table`],
    [
      "a failed check constraint",
      sql`insert into conversation_states (device_id, active_agent, session_ttl, expires_at)
      values (gen_random_uuid(), 'a', 0, now())`,
    ],
  ])("does not count %s as the database being unavailable", async (_, statement) => {
    const error = await database.db.execute(statement).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(Error);
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});
