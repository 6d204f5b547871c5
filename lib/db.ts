import { randomUUID } from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import type { Pool as NeonPool } from "@neondatabase/serverless";
import type pg from "pg";
import { type Env, parseDatabaseUrl } from "./env.js";
import { errorChain, isWrappedQueryError } from "./errors.js";

/**
 * The only module that knows the drivers. Each is imported when it is chosen, so a function
 * loads one: PGlite (embedded), node-postgres, or Neon's serverless driver over WebSocket.
 * Requests run their SQL on the driver itself; drizzle (`lib/drizzle.ts`) is loaded only to
 * migrate, so a function's cold start does not pay for its query builder.
 */

/** A driver's own client: a node-postgres or Neon pool, or the embedded PGlite. */
export type SqlClient = pg.Pool | NeonPool | PGlite;

/**
 * What the lib runs SQL on: a driver's client, or a drizzle database over one (an application's
 * own drizzle database works as it is: its `$client` runs the statements).
 */
export type Database = SqlClient | { $client: SqlClient };

export type Driver = "pglite" | "pg" | "neon";

/** The driver's client of a database (a drizzle database's `$client`). */
export function clientOf(db: Database): SqlClient {
  return "$client" in db ? db.$client : db;
}

/** An open database and how to close it. */
export type DatabaseHandle = {
  /** The driver's client, as `openDatabase` opens it. */
  db: Database;
  driver: Driver;
  /** Ends the pool (or the embedded engine). */
  close(): Promise<void>;
};

/** How to reach the database. */
export type DatabaseOptions = {
  /** Unset: the embedded PGlite at `pgliteDir`. */
  url?: string;
  /** Forces a driver; by default a `*.neon.tech` host means Neon, any other URL node-postgres. */
  driver?: Driver;
  /** @default ".data/pglite" (`memory://` keeps nothing) */
  pgliteDir?: string;
  /** Give up opening a connection after this. @default 3000 */
  connectTimeoutMs?: number;
  /** Give up waiting for a query's answer after this (client side, so a silent network counts). @default 5000 */
  queryTimeoutMs?: number;
  /** @default 10 */
  poolMax?: number;
  /** Neon driver settings for a local WebSocket proxy (tests); production uses Neon's defaults. */
  neon?: { wsProxy: (host: string, port: number | string) => string; useSecureWebSocket: boolean };
  /** Where pool errors go; they never crash the process. @default console.error */
  onPoolError?: (error: Error) => void;
};

/** The options the environment asks for. */
export function databaseOptionsFromEnv(env: Env): DatabaseOptions {
  return {
    url: env.DATABASE_URL,
    driver: env.DATABASE_DRIVER,
    pgliteDir: env.PGLITE_DIR,
    connectTimeoutMs: env.DATABASE_CONNECT_TIMEOUT_MS,
    queryTimeoutMs: env.DATABASE_QUERY_TIMEOUT_MS,
    poolMax: env.DATABASE_POOL_MAX,
  };
}

/** Which driver serves these options. */
export function chooseDriver(options: Pick<DatabaseOptions, "url" | "driver">): Driver {
  if (options.driver) return options.driver;
  if (!options.url) return "pglite";
  return parseDatabaseUrl(options.url)?.hostname.endsWith(".neon.tech") ? "neon" : "pg";
}

/** Opens a database; no connection is made until the first query (PGlite starts at once). */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  const driver = chooseDriver(options);
  if (driver !== "pglite" && !options.url) throw new Error(`The ${driver} driver needs DATABASE_URL.`);
  if (driver === "pglite") return openPglite(options.pgliteDir ?? ".data/pglite");
  return driver === "pg" ? openNodePostgres(options) : openNeon(options);
}

async function openPglite(dir: string): Promise<DatabaseHandle> {
  const { PGlite } = await import("@electric-sql/pglite");
  // A folder on this disk, as a path or as PGlite's file:// (memory:// and the like keep none).
  const folder = dir.startsWith("file://") ? dir.slice("file://".length) : dir.includes("://") ? null : dir;
  if (folder === null) {
    const client = await PGlite.create(dir);
    return { db: client, driver: "pglite", close: () => client.close() };
  }
  await mkdir(folder, { recursive: true });
  const unlock = await lockFolder(folder);
  const client = await PGlite.create(dir).catch(async (error: unknown) => {
    await unlock();
    throw error;
  });
  return {
    db: client,
    driver: "pglite",
    async close() {
      try {
        await client.close();
      } finally {
        await unlock();
      }
    },
  };
}

/** The lock files this process holds: its own pid in another one is a stale lock. */
const heldLocks = new Set<string>();

/**
 * Takes `<dir>.lock` for this process: PGlite, unlike a Postgres server, lets a second process (or
 * a second open in this one) run on the same folder, where the two would hand out the same
 * versions and overwrite each other's files. A lock whose process is gone (a crash) is taken over,
 * also one with this process's own pid from an earlier life (a container starts at the same pid).
 * @returns what releases it
 */
async function lockFolder(dir: string): Promise<() => Promise<void>> {
  const path = `${resolve(dir)}.lock`;
  const token = `${process.pid} ${randomUUID()}`;
  // Written whole under another name, then linked in: the lock never exists without its pid.
  const draft = `${path}.${randomUUID()}`;
  await writeFile(draft, token);
  // Set once a stale lock was removed: another process that found the same one may then have
  // removed ours after we linked it, and linked its own. The one whose lock is there a moment
  // later has it.
  let tookOver = false;
  try {
    for (;;) {
      try {
        await link(draft, path);
      } catch (error) {
        if ((error as { code?: unknown }).code !== "EEXIST") throw error;
        const holder = Number((await readFile(path, "utf8").catch(() => "")).split(" ")[0]);
        if (heldLocks.has(path) || (holder !== process.pid && isRunning(holder))) {
          throw new Error(
            `The embedded database at ${dir} is in use by process ${holder}: stop it, or set PGLITE_DIR to another folder.`,
          );
        }
        await rm(path, { force: true });
        tookOver = true;
        continue;
      }
      if (tookOver) {
        await new Promise((resolvePause) => setTimeout(resolvePause, 50));
        if ((await readFile(path, "utf8").catch(() => "")) !== token) continue;
      }
      heldLocks.add(path);
      return async () => {
        heldLocks.delete(path);
        await rm(path, { force: true });
      };
    }
  } finally {
    await rm(draft, { force: true });
  }
}

function isRunning(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM";
  }
}

/** How long a pooled connection may sit idle before the pool closes it. */
export const POOL_IDLE_TIMEOUT_MS = 30_000;

/**
 * True for the URL of a connection pooler such as PgBouncer, which refuses a connection that sends
 * a startup parameter it does not know (`unsupported startup parameter: statement_timeout`,
 * SQLSTATE 08P01): Neon's pooled endpoints (`ep-…-pooler.…`), or any URL that says
 * `pgbouncer=true` (the marker Prisma uses).
 */
export function isPoolerUrl(url: string): boolean {
  const parsed = parseDatabaseUrl(url);
  return !!parsed && (/-pooler\./i.test(parsed.hostname) || parsed.searchParams.get("pgbouncer") === "true");
}

function poolConfig(options: DatabaseOptions) {
  const queryTimeoutMs = options.queryTimeoutMs ?? 5000;
  return {
    connectionString: options.url,
    max: options.poolMax ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 3000,
    // Client-side: also ends a query whose answer never comes (a silent network).
    query_timeout: queryTimeoutMs,
    // Server-side: the database stops the work too, instead of finishing it for nobody. Sent at
    // startup, which a pooler refuses: there, only the client side applies.
    ...(options.url && isPoolerUrl(options.url) ? {} : { statement_timeout: queryTimeoutMs }),
    idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS,
    keepAlive: true,
  };
}

async function openNodePostgres(options: DatabaseOptions): Promise<DatabaseHandle> {
  const { default: pg } = await import("pg");
  const pool = new pg.Pool(poolConfig(options));
  pool.on("error", options.onPoolError ?? logPoolError);
  return { db: pool, driver: "pg", close: () => pool.end() };
}

async function openNeon(options: DatabaseOptions): Promise<DatabaseHandle> {
  const [{ Pool, neonConfig }, { default: WebSocket }] = await Promise.all([
    import("@neondatabase/serverless"),
    import("ws"),
  ]);
  neonConfig.webSocketConstructor = WebSocket;
  // Coalescing waits for the next tick before sending, which costs every query about 1 ms.
  neonConfig.coalesceWrites = false;
  if (options.neon) {
    neonConfig.wsProxy = options.neon.wsProxy;
    neonConfig.useSecureWebSocket = options.neon.useSecureWebSocket;
    // A local proxy to a trust-auth server answers no password prompt: pipelining one breaks the login.
    neonConfig.pipelineConnect = false;
    neonConfig.pipelineTLS = false;
  }
  const pool = new Pool(poolConfig(options));
  pool.on("error", options.onPoolError ?? logPoolError);
  return { db: pool, driver: "neon", close: () => pool.end() };
}

function logPoolError(error: Error): void {
  console.error(JSON.stringify({ level: "error", msg: "database pool error", error: error.message }));
}

// Connection exceptions (class 08), too many connections, shutdowns, cancelled by statement_timeout.
const UNAVAILABLE_SQLSTATES = new Set(["53300", "57P01", "57P02", "57P03", "57014"]);
const UNAVAILABLE_MESSAGE =
  /timeout|timed out|terminated|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ENOTFOUND|EPIPE|socket|not queryable|Connection/i;

/**
 * True when an error means the database could not be reached or did not answer in time
 * (as opposed to a bug in a statement). Looks through the `cause` chain (drizzle's wrapper, from
 * migrations, among others).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (const current of errorChain(error)) {
    const code = (current as { code?: unknown }).code;
    // Node's own errors have codes of the same shape (EPIPE); no SQLSTATE class starts with E.
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith("E")) {
      // A SQLSTATE from the server: it answered, so only these few mean "unavailable".
      return code.startsWith("08") || UNAVAILABLE_SQLSTATES.has(code);
    }
    if (typeof code === "string" && UNAVAILABLE_MESSAGE.test(code)) return true;
    // Drizzle's wrapper repeats the query and its parameters in its message: judge its cause only.
    if (!isWrappedQueryError(current) && UNAVAILABLE_MESSAGE.test(current.message)) return true;
  }
  return false;
}

/**
 * Opens (if needed) and pings the database, giving up after `timeoutMs`.
 * Never throws: a database that fails or does not answer is `{ ok: false }`.
 */
export async function checkDatabase(
  source: { database(): Promise<DatabaseHandle> },
  timeoutMs: number,
): Promise<{ ok: true; latencyMs: number } | { ok: false; error: string }> {
  const startedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const ping = source.database().then(({ db }) => queryOf(db)(PING));
    await Promise.race([ping, timeout]);
    return { ok: true, latencyMs: Math.round((performance.now() - startedAt) * 100) / 100 };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

const PING: Statement = { text: "select 1" };

/** One SQL statement: its text with `$n` parameters and, to prepare it once per connection, a name. */
export type Statement = { text: string; name?: string };

/** Runs one statement with its parameters; resolves with its rows. */
export type Query = <Row = Record<string, unknown>>(
  statement: Statement,
  params?: unknown[],
) => Promise<Row[]>;

type PoolLike = {
  query(config: { name?: string | undefined; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
  options?: { connectionString?: string };
};

/**
 * False for a URL that says `pgbouncer=true` (the marker Prisma uses for the same purpose): a
 * pooler in transaction mode may run each statement on another server connection, where one
 * prepared on the last is unknown or already there (PgBouncer before 1.21, or without
 * `max_prepared_statements`). Neon's pooler (`-pooler.`, PgBouncer 1.22) keeps them per client.
 */
function namesStatements(url: string | undefined): boolean {
  return (url ? parseDatabaseUrl(url) : null)?.searchParams.get("pgbouncer") !== "true";
}
type PgliteLike = { query(text: string, params: unknown[]): Promise<{ rows: unknown[] }> };

/**
 * The query function of a database, on its driver. node-postgres and Neon prepare a named
 * statement once per connection, but for a URL that says `pgbouncer=true`; PGlite runs
 * in-process, where there is no round trip to save.
 */
export function queryOf(db: Database): Query {
  const client = clientOf(db);
  // Both pools (node-postgres and Neon's, which extends it) count their clients; PGlite does not.
  if ("totalCount" in client) {
    const pool = client as unknown as PoolLike;
    const named = namesStatements(pool.options?.connectionString);
    return async (statement, values = []) =>
      (await pool.query({ name: named ? statement.name : undefined, text: statement.text, values }))
        .rows as never[];
  }
  const pglite = client as unknown as PgliteLike;
  return async (statement, params = []) => (await pglite.query(statement.text, params)).rows as never[];
}
