import { type DatabaseHandle, databaseOptionsFromEnv, openDatabase } from "./db.js";
import { type Env, env } from "./env.js";
import { createLockStore, type LockStore } from "./locks.js";
import { migrate } from "./migrate.js";

/** One structured log line. */
export type LogRecord = { level: "info" | "warn" | "error"; msg: string; [key: string]: unknown };
export type Logger = (record: LogRecord) => void;

/** What a route needs: the configuration, the database (opened on first use) and a logger. */
export type Context = {
  env: Env;
  database(): Promise<DatabaseHandle>;
  store(): Promise<LockStore>;
  log: Logger;
  /** Closes the database if it was opened. */
  close(): Promise<void>;
};

/** A record as the loggers write it: one JSON line with the time first. */
export const jsonLine = (record: LogRecord) =>
  `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`;

/**
 * Writes one JSON line a record to stdout at once, as Vercel's log drains expect: a function's
 * instance may be frozen as soon as its response is out, so nothing is left for later.
 */
export const jsonLogger: Logger = (record) => {
  process.stdout.write(jsonLine(record));
};

/** Lines the batched logger took in this turn of the event loop, not yet written. */
let pendingLines = "";
let flushOnExit = false;

function flushLines(): void {
  const lines = pendingLines;
  pendingLines = "";
  if (lines) process.stdout.write(lines);
}

/**
 * `jsonLogger` for a process that lives on, such as the local server: the lines of one turn of
 * the event loop go out in one write at its end (`setImmediate`), and at the latest when the
 * process exits. A write is a system call, which under load cost more than building the line.
 */
export const batchedJsonLogger: Logger = (record) => {
  if (!pendingLines) {
    setImmediate(flushLines);
    if (!flushOnExit) {
      flushOnExit = true;
      process.once("exit", flushLines);
    }
  }
  pendingLines += jsonLine(record);
};

export type ContextOptions = {
  /** How to open the database. @default openDatabase(databaseOptionsFromEnv(env)), migrating PGlite */
  open?: () => Promise<DatabaseHandle>;
  /** @default jsonLogger */
  log?: Logger;
};

/**
 * A context over `env`. The database opens on the first request that needs it; a failed open
 * is not remembered, so the next request tries again (a database that comes back just works).
 */
export function createContext(env: Env, options: ContextOptions = {}): Context {
  const open = options.open ?? (() => openFromEnv(env));
  let opening: Promise<{ handle: DatabaseHandle; store: LockStore }> | undefined;

  function ready() {
    opening ??= open().then(
      (handle) => ({
        handle,
        store: createLockStore(handle.db, {
          defaultTtlSeconds: env.DEFAULT_SESSION_TTL,
          maxTtlSeconds: env.MAX_SESSION_TTL,
          allowedAgents: env.ALLOWED_AGENTS,
        }),
      }),
      (error: unknown) => {
        opening = undefined;
        throw error;
      },
    );
    return opening;
  }

  return {
    env,
    log: options.log ?? jsonLogger,
    database: async () => (await ready()).handle,
    store: async () => (await ready()).store,
    async close() {
      const current = opening;
      opening = undefined;
      if (current) await (await current).handle.close();
    },
  };
}

async function openFromEnv(env: Env): Promise<DatabaseHandle> {
  const handle = await openDatabase(databaseOptionsFromEnv(env));
  // The embedded database has no deploy step to migrate it: do it when it opens. Closed when that
  // fails, so that the next request's open does not find it still holding its folder.
  if (handle.driver === "pglite") {
    await migrate(handle).catch(async (error: unknown) => {
      await handle.close();
      throw error;
    });
  }
  return handle;
}

let processContext: Context | undefined;

/**
 * The process's context, built from `process.env` on first use (what the `api/` functions run on).
 * @throws ConfigError when a variable is bad; routes answer `misconfigured` then.
 */
export function defaultContext(): Context {
  processContext ??= createContext(env());
  return processContext;
}
