import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, isPoolerUrl, queryOf } from "../lib/db.js";
import { createLockStore } from "../lib/locks.js";
import { connect, networkEngines, type TestDatabase } from "./helpers/engines.js";
import { type PgBouncer, startPgBouncer } from "./helpers/pgbouncer.js";

describe("isPoolerUrl", () => {
  it.each([
    [
      "Neon's pooled endpoint",
      "postgresql://u:p@ep-quiet-lake-123456-pooler.us-east-2.aws.neon.tech/app",
      true,
    ],
    ["any URL marked pgbouncer=true", "postgres://postgres@127.0.0.1:6432/test?pgbouncer=true", true],
    ["Neon's direct endpoint", "postgres://u:p@ep-quiet-lake-123456.eu-central-1.aws.neon.tech/app", false],
    ["a local server", "postgres://postgres@127.0.0.1:5432/test", false],
    ["pgbouncer=false", "postgres://postgres@127.0.0.1:6432/test?pgbouncer=false", false],
    ["a database named pooler", "postgres://postgres@127.0.0.1:5432/x-pooler.y", false],
  ] as const)("is %s for %s", (_, url, pooler) => {
    expect(isPoolerUrl(url)).toBe(pooler);
  });
});

/**
 * Through a real PgBouncer, which refuses every connection that sends a startup parameter it does
 * not know. Before the lib left `statement_timeout` out for poolers, every request through Neon's
 * pooled endpoint would have failed to connect (a `08P01`, answered as `503`).
 */
describe.each(networkEngines)("through PgBouncer on $name", (engine) => {
  let database: TestDatabase;
  let bouncer: PgBouncer;
  let pooledUrl: string;

  beforeAll(async () => {
    database = await engine.open();
    bouncer = await startPgBouncer(database.url ?? "");
    const url = new URL(bouncer.url(database.url ?? ""));
    url.searchParams.set("pgbouncer", "true");
    pooledUrl = url.toString();
  });
  afterAll(async () => {
    await bouncer?.close();
    await database?.close();
  });

  it("refuses a connection that sends statement_timeout at startup (what the lib must not send)", async () => {
    const client = new pg.Client({
      connectionString: bouncer.url(database.url ?? ""),
      statement_timeout: 5000,
    });
    client.on("error", () => {});
    await expect(client.connect()).rejects.toMatchObject({
      code: "08P01",
      message: expect.stringMatching(/unsupported startup parameter: statement_timeout/),
    });
  });

  it("takes, reads and clears a lock through a pooler URL, with the client-side timeout only", async () => {
    const handle = await connect(engine.name as "pg" | "neon", pooledUrl, { queryTimeoutMs: 2000 });
    try {
      const store = createLockStore(handle.db);
      const deviceId = randomUUID();
      const set = await store.set(deviceId, { agent: "billing", ttlSeconds: 60 });
      expect(set.ok && set.lock?.activeAgent).toBe("billing");
      expect((await store.get(deviceId))?.activeAgent).toBe("billing");
      expect(await store.clear(deviceId)).toEqual({ ok: true, cleared: true });
      expect(await store.get(deviceId)).toBeNull();
      expect(await statementTimeout(handle.db)).toBe("0");
    } finally {
      await handle.close();
    }
  });

  it("still sets statement_timeout on a direct connection", async () => {
    const handle = await connect(engine.name as "pg" | "neon", database.url ?? "", { queryTimeoutMs: 2000 });
    try {
      expect(await statementTimeout(handle.db)).toBe("2s");
    } finally {
      await handle.close();
    }
  });
});

/**
 * Through a PgBouncer in transaction mode that knows nothing of prepared statements (1.18): every
 * statement may run on another server connection, so the lib must send them unnamed.
 */
describe.each(networkEngines)("through a transaction-mode PgBouncer on $name", (engine) => {
  let database: TestDatabase;
  let bouncer: PgBouncer;

  beforeAll(async () => {
    database = await engine.open();
    bouncer = await startPgBouncer(database.url ?? "", "transaction");
  });
  afterAll(async () => {
    await bouncer?.close();
    await database?.close();
  });

  it("sets and reads locks from many connections at once with pgbouncer=true", async () => {
    const url = new URL(bouncer.url(database.url ?? ""));
    url.searchParams.set("pgbouncer", "true");
    const handle = await connect(engine.name as "pg" | "neon", url.toString(), { queryTimeoutMs: 2000 });
    try {
      const store = createLockStore(handle.db);
      const devices = Array.from({ length: 20 }, () => randomUUID());
      for (let round = 0; round < 3; round++) {
        const sets = await Promise.all(
          devices.map((id) => store.set(id, { agent: `agent-${round}`, ttlSeconds: 60 })),
        );
        expect(sets.every((result) => result.ok)).toBe(true);
        const locks = await Promise.all(devices.map((id) => store.get(id)));
        expect(locks.map((lock) => lock?.activeAgent)).toEqual(devices.map(() => `agent-${round}`));
      }
    } finally {
      await handle.close();
    }
  });
});

/** The session's `statement_timeout`, as the server has it. */
async function statementTimeout(db: Database): Promise<string | undefined> {
  const [row] = await queryOf(db)<{ statement_timeout: string }>({ text: "show statement_timeout" });
  return row?.statement_timeout;
}
