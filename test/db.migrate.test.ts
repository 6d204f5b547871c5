import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { DatabaseHandle } from "../lib/db.js";
import { migrate } from "../lib/migrate.js";
import { blankPglite, connect, engines, networkEngines, type TestDatabase } from "./helpers/engines.js";
import { migrationCount } from "./helpers/migrations.js";
import {
  adminQuery,
  databaseUrl,
  dropDatabase,
  quoteIdentifier,
  uniqueDatabaseName,
} from "./helpers/server.js";

function rowsOf<Row>(result: unknown): Row[] {
  return (result as { rows: Row[] }).rows;
}

describe("migrate on a blank database", () => {
  let handle: DatabaseHandle;

  beforeAll(async () => {
    handle = await blankPglite();
  });
  afterAll(async () => {
    await handle?.close();
  });

  it("applies every migration once, then nothing", async () => {
    const total = await migrationCount();

    expect(await migrate(handle)).toEqual({ applied: total, total });
    expect(await migrate(handle)).toEqual({ applied: 0, total });
  });
});

describe.each(networkEngines)("migrate twice at once on a blank database on $name", (engine) => {
  it("succeeds in both runs (two deploys at once), applying each migration once", async () => {
    const server = inject("testServer");
    if (!server) throw new Error("needs TEST_DATABASE_URL");
    const total = await migrationCount();
    for (let round = 0; round < 3; round++) {
      const name = uniqueDatabaseName(server.prefix);
      await adminQuery(server.adminUrl, `create database ${quoteIdentifier(name)}`);
      const url = databaseUrl(server.adminUrl, name);
      const [first, second] = await Promise.all([
        connect(engine.name as "pg", url),
        connect(engine.name as "pg", url),
      ]);
      try {
        const runs = await Promise.allSettled([
          migrate(first as DatabaseHandle),
          migrate(second as DatabaseHandle),
        ]);
        expect(
          runs.map((run) => (run.status === "fulfilled" ? run.value.total : String(run.reason))),
        ).toEqual([total, total]);
        const applied = runs.reduce(
          (sum, run) => sum + (run.status === "fulfilled" ? run.value.applied : 0),
          0,
        );
        expect(applied).toBe(total);
      } finally {
        await first?.close();
        await second?.close();
        await dropDatabase(server.adminUrl, name);
      }
    }
  });
});

describe.each(engines)("the migrated schema on $name", (engine) => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await engine.open();
  });
  afterAll(async () => {
    await database?.close();
  });

  it("is up to date: migrating again applies nothing", async () => {
    expect(await migrate(database)).toEqual({ applied: 0, total: await migrationCount() });
  });

  it("has conversation_states with the contract's columns", async () => {
    const columns = rowsOf<{ name: string; type: string; nullable: string; default: string | null }>(
      await database.db.execute(sql`
        select column_name as name, data_type as type, is_nullable as nullable, column_default as default
        from information_schema.columns
        where table_schema = 'public' and table_name = 'conversation_states'
        order by ordinal_position`),
    );

    expect(columns).toEqual([
      { name: "device_id", type: "uuid", nullable: "NO", default: null },
      { name: "active_agent", type: "character varying", nullable: "NO", default: null },
      { name: "locked_at", type: "timestamp with time zone", nullable: "NO", default: "now()" },
      { name: "session_ttl", type: "integer", nullable: "NO", default: "86400" },
      { name: "expires_at", type: "timestamp with time zone", nullable: "NO", default: null },
      {
        name: "version",
        type: "bigint",
        nullable: "NO",
        default: "nextval('conversation_states_version_seq'::regclass)",
      },
    ]);
  });

  it("indexes expires_at, keys device_id, and refuses a TTL of zero", async () => {
    const indexes = rowsOf<{ definition: string }>(
      await database.db.execute(sql`
        select indexdef as definition from pg_indexes
        where schemaname = 'public' and tablename = 'conversation_states' order by indexname`),
    ).map((row) => row.definition);

    expect(indexes).toEqual([
      expect.stringMatching(/^CREATE INDEX conversation_states_expires_at_idx .*\(expires_at\)$/),
      expect.stringMatching(/^CREATE UNIQUE INDEX conversation_states_pkey .*\(device_id\)$/),
    ]);
    const error = await database.db
      .execute(sql`insert into conversation_states (device_id, active_agent, session_ttl, expires_at)
        values (gen_random_uuid(), 'a', 0, now())`)
      .catch((caught: unknown) => caught);
    expect(String((error as Error).cause ?? error)).toMatch(/conversation_states_session_ttl_positive/);
  });
});
