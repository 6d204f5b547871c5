import pg from "pg";
import { openDatabase } from "../lib/db.js";
import { migrate } from "../lib/migrate.js";
import { DEVICE_ID_SQL, progress, sleep } from "./util.js";

/**
 * The bench's own databases on the server in `DATABASE_URL`: each case gets a fresh one
 * (`bench_<case>_<pid>`), migrated with the project's migrations, dropped at the end.
 */

const DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** The server to measure: `DATABASE_URL`, else the local default. Never a Neon URL. */
export function serverUrl(): string {
  const url = process.env.DATABASE_URL || DEFAULT_URL;
  if (new URL(url).hostname.endsWith(".neon.tech")) {
    throw new Error("The bench creates and drops databases: point DATABASE_URL at a local Postgres.");
  }
  return url;
}

export function databaseUrl(name: string): string {
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

/** One statement on a short-lived connection (to `database`, default the server's own). */
export async function sqlOnce<Row extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
  database?: string,
): Promise<Row[]> {
  const client = new pg.Client({ connectionString: database ? databaseUrl(database) : serverUrl() });
  await client.connect();
  try {
    return (await client.query<Row>(text, values)).rows;
  } finally {
    await client.end();
  }
}

const created = new Set<string>();

/** Creates `bench_<tag>_<pid>` and applies the migrations. */
export async function createBenchDatabase(tag: string): Promise<{ name: string; url: string }> {
  const name = `bench_${tag}_${process.pid}`;
  await sqlOnce(`drop database if exists ${name} with (force)`);
  await sqlOnce(`create database ${name}`);
  created.add(name);
  const url = databaseUrl(name);
  const handle = await openDatabase({ url, driver: "pg", poolMax: 1 });
  try {
    await migrate(handle);
  } finally {
    await handle.close();
  }
  return { name, url };
}

/**
 * Drops a bench database. A closed pool's connections may still be on their way out: wait for
 * them (up to 3 s) rather than kill them mid-close, then force.
 */
export async function dropBenchDatabase(name: string): Promise<void> {
  for (let attempt = 0; attempt < 30; attempt++) {
    try {
      await sqlOnce(`drop database if exists ${name}`);
      created.delete(name);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== "55006") throw error;
      await sleep(100);
    }
  }
  await sqlOnce(`drop database if exists ${name} with (force)`);
  created.delete(name);
}

/** Drops every database this process created (also after a failure). */
export async function dropAllBenchDatabases(): Promise<void> {
  for (const name of [...created]) await dropBenchDatabase(name);
}

/**
 * Fills `conversation_states` with `rows` locks in one `INSERT … SELECT generate_series`: device
 * `md5('dev-' || i)::uuid`, version `i`; with `halfExpired`, every even row expired 1 to 2 hours ago.
 * Indexes and keys are dropped for the load and rebuilt after it (the same definitions), which is
 * several times faster than maintaining them row by row; then `vacuum analyze` and a checkpoint.
 */
export async function fillLocks(url: string, rows: number, options: { halfExpired: boolean }): Promise<void> {
  const startedAt = performance.now();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("truncate conversation_states");
    const constraints = (
      await client.query<{ conname: string; def: string }>(
        `select conname, pg_get_constraintdef(oid) as def from pg_constraint
         where conrelid = 'conversation_states'::regclass and contype in ('p', 'u')`,
      )
    ).rows;
    const indexes = (
      await client.query<{ indexname: string; indexdef: string }>(
        `select indexname, indexdef from pg_indexes
         where schemaname = current_schema() and tablename = 'conversation_states'
           and indexname not in (select conname from pg_constraint where conrelid = 'conversation_states'::regclass)`,
      )
    ).rows;
    for (const { conname } of constraints) {
      await client.query(`alter table conversation_states drop constraint "${conname}"`);
    }
    for (const { indexname } of indexes) await client.query(`drop index "${indexname}"`);
    await client.query(
      `insert into conversation_states (device_id, active_agent, locked_at, session_ttl, expires_at, version)
       select ${DEVICE_ID_SQL("i")}, 'scheduling', locked_at, ttl, locked_at + make_interval(secs => ttl), i
       from (
         select i,
           case when $2 and i % 2 = 0 then 3600 else 86400 end as ttl,
           now() - make_interval(secs => case when $2 and i % 2 = 0 then 7200 else 0 end + i % 3600) as locked_at
         from generate_series(1, $1::integer) as i
       ) as generated`,
      [rows, options.halfExpired],
    );
    for (const { conname, def } of constraints) {
      await client.query(`alter table conversation_states add constraint "${conname}" ${def}`);
    }
    for (const { indexdef } of indexes) await client.query(indexdef);
    await client.query(
      `select setval('conversation_states_version_seq',
         greatest((select last_value from conversation_states_version_seq), $1::bigint))`,
      [rows],
    );
    await client.query("vacuum analyze conversation_states");
    await checkpoint(client);
  } finally {
    await client.end();
  }
  progress(`filled ${rows.toLocaleString("en")} rows in ${Math.round(performance.now() - startedAt)} ms`);
}

/**
 * A checkpoint now, so that the WAL a fill wrote does not set one off during the measurement that
 * follows: a million-row fill writes about half a GiB, enough to start one a few seconds later,
 * which then slows every commit it overlaps. Needs superuser or `pg_checkpoint`; without either
 * the run goes on and says so.
 */
async function checkpoint(client: pg.Client): Promise<void> {
  try {
    await client.query("checkpoint");
  } catch (error) {
    progress(`no checkpoint after the fill (${(error as Error).message}): a checkpoint may overlap a run`);
  }
}

/**
 * `vacuum` between runs. Autovacuum is off on this server, so without it every run would leave
 * thousands of dead row versions for the next one to step over; this does what autovacuum would.
 */
export async function vacuum(url: string, tables: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const table of tables) await client.query(`vacuum ${table}`);
  } finally {
    await client.end();
  }
}
