import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * The Postgres server named by `TEST_DATABASE_URL`, as the global setup prepared it for a run:
 * a migrated template database, and a name prefix that every database of the run carries, so
 * that the teardown can drop what the run created.
 */
export type TestServer = {
  /** `TEST_DATABASE_URL`: where administrative statements (create, drop) go. */
  adminUrl: string;
  /** The migrated database that fresh databases are copied from. */
  template: string;
  /** Every database this run creates is named `<prefix>_…`. */
  prefix: string;
};

declare module "vitest" {
  export interface ProvidedContext {
    /** The server in `TEST_DATABASE_URL`, or `null` when the run is on PGlite only. */
    testServer: TestServer | null;
  }
}

/** The URL of another database on the same server. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A database name no other run or test uses: `<prefix>_<random>`. */
export function uniqueDatabaseName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

/** Runs statements one by one over a short-lived connection to `adminUrl`. */
export async function adminQuery(adminUrl: string, ...statements: string[]): Promise<pg.QueryResult[]> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const results: pg.QueryResult[] = [];
    for (const statement of statements) results.push(await client.query(statement));
    return results;
  } finally {
    await client.end();
  }
}

/** Quotes an identifier for SQL. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Creates a database as a copy of the run's migrated template; returns its name. */
export async function createDatabase(server: TestServer): Promise<string> {
  const name = uniqueDatabaseName(server.prefix);
  await adminQuery(
    server.adminUrl,
    `create database ${quoteIdentifier(name)} template ${quoteIdentifier(server.template)}`,
  );
  return name;
}

/** Drops a database, ending any session still connected to it. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await adminQuery(adminUrl, `drop database if exists ${quoteIdentifier(name)} with (force)`);
}
