import { inject } from "vitest";
import { type DatabaseHandle, type DatabaseOptions, type Driver, openDatabase } from "../../lib/db.js";
import { type DrizzleDatabase, drizzleOf } from "../../lib/drizzle.js";
import { reroute } from "./net.js";
import { openPgliteCopy } from "./pglite.js";
import { createDatabase, databaseUrl, dropDatabase } from "./server.js";
import { startWsBridge, type WsBridge } from "./ws-bridge.js";

/** Driver settings a test may choose (pg, neon; PGlite has none); the rest are lib/db.ts defaults. */
export type ConnectOptions = Pick<
  DatabaseOptions,
  "connectTimeoutMs" | "queryTimeoutMs" | "poolMax" | "onPoolError"
>;

/** Options of `TestEngine.open`. */
export type OpenOptions = ConnectOptions & {
  /**
   * Reach the server through this TCP address (e.g. a `TcpProxy`) instead of the one in
   * `TEST_DATABASE_URL`; the database is still created directly.
   */
  via?: { host: string; port: number };
};

/**
 * A handle on a database of its own, its client wrapped in drizzle for the tests' own queries
 * (the lib takes it as it is); `close()` also drops the database (pg, neon).
 */
export type TestDatabase = DatabaseHandle & {
  db: DrizzleDatabase;
  /** The database's URL (pg, neon), `null` on PGlite. */
  url: string | null;
};

/** A Postgres engine and driver that a suite runs on. */
export type TestEngine = {
  name: Driver;
  /** Opens a handle on a new, migrated, empty database that nothing else uses. */
  open(options?: OpenOptions): Promise<TestDatabase>;
};

/** A new in-memory PGlite, migrated and empty, from the run's template (no drizzle). */
export const migratedPglite = () => openPgliteCopy(inject("pgliteTemplate"));

/** A new in-memory PGlite that was never migrated, from the run's template: the lib's statements fail. */
export const blankPglite = () => openPgliteCopy(inject("pgliteBlank"));

const pglite: TestEngine = {
  name: "pglite",
  async open() {
    return { ...(await withDrizzle(await migratedPglite())), url: null };
  },
};

function serverEngine(name: "pg" | "neon"): TestEngine {
  return {
    name,
    async open(options = {}) {
      const server = inject("testServer");
      if (!server) throw new Error(`The ${name} engine needs TEST_DATABASE_URL.`);
      const database = await createDatabase(server);
      const url = databaseUrl(server.adminUrl, database);
      const handle = await connect(name, options.via ? reroute(url, options.via) : url, options).catch(
        async (error: unknown) => {
          await dropDatabase(server.adminUrl, database);
          throw error;
        },
      );
      return {
        ...(await withDrizzle(handle)),
        url,
        async close() {
          try {
            await handle.close();
          } finally {
            await dropDatabase(server.adminUrl, database);
          }
        },
      };
    },
  };
}

/**
 * The engines of this run: always `pglite` (in memory, started from the run's migrated data
 * directory); with `TEST_DATABASE_URL` also `pg` (node-postgres) and `neon` (Neon's serverless
 * driver through a local WebSocket bridge), both on databases copied from the run's migrated
 * template. Use with `describe.each(engines)("$name", …)`.
 */
export const engines: readonly TestEngine[] = inject("testServer")
  ? [pglite, serverEngine("pg"), serverEngine("neon")]
  : [pglite];

/**
 * The engines that talk to a server over the network: empty without `TEST_DATABASE_URL`. Vitest
 * fails a file that declares no test at all, so keep `describe.each(networkEngines)` beside other
 * suites, or add a test that runs either way.
 */
export const networkEngines: readonly TestEngine[] = engines.filter((engine) => engine.name !== "pglite");

let bridge: { started: Promise<WsBridge>; users: number } | null = null;

/**
 * Opens `url` with the node-postgres or the Neon driver, as the engines do (Neon through a local
 * WebSocket bridge, started on first use and closed with its last handle). Creates and migrates
 * nothing: also for servers that are not Postgres at all, such as a silent `TcpProxy`.
 */
export async function connect(
  driver: "pg" | "neon",
  url: string,
  options: ConnectOptions = {},
): Promise<DatabaseHandle> {
  if (driver === "pg") return openDatabase({ ...options, url, driver });
  bridge ??= { started: startWsBridge(), users: 0 };
  const current = bridge;
  current.users += 1;
  const release = async () => {
    current.users -= 1;
    if (current.users > 0) return;
    if (bridge === current) bridge = null;
    await (await current.started).close();
  };
  try {
    const { wsProxy } = await current.started;
    const handle = await openDatabase({
      ...options,
      url,
      driver,
      neon: { wsProxy, useSecureWebSocket: false },
    });
    return {
      ...handle,
      async close() {
        try {
          await handle.close();
        } finally {
          await release();
        }
      },
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/** The handle with its client wrapped in drizzle, for a test's own queries. */
export async function withDrizzle(handle: DatabaseHandle): Promise<DatabaseHandle & { db: DrizzleDatabase }> {
  return { ...handle, db: await drizzleOf(handle) };
}
