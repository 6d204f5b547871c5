/**
 * `npm run dev`: the `api/` functions and `public/` on http://localhost:$PORT, on the embedded
 * database unless DATABASE_URL is set, with migrations applied at start.
 */
import { batchedJsonLogger, createContext } from "../lib/context.js";
import { type DatabaseHandle, databaseOptionsFromEnv, openDatabase } from "../lib/db.js";
import { ConfigError, env as readEnv } from "../lib/env.js";
import { migrate } from "../lib/migrate.js";
import { describeDatabase } from "./describe-database.js";
import { startLocalServer } from "./server.js";

/** What is open so far, for the message and the clean-up when starting fails. */
let port: number | undefined;
let server: Awaited<ReturnType<typeof startLocalServer>> | undefined;
let handle: DatabaseHandle | undefined;
/** Fails the requests waiting for the database when it cannot be opened. */
let failed: (error: unknown) => void = () => {};
/** Closes what is open: on a signal, or when starting fails part way. */
async function closeOpened(): Promise<void> {
  await server?.close();
  await handle?.close();
}

/** Opens the server, then the database; `true` once both are up. */
async function start(): Promise<boolean> {
  try {
    const env = readEnv();
    port = env.PORT;
    // The port first: a second `npm run dev` on it stops there, before it opens the embedded
    // database (on another port, the database folder's lock stops it). Requests that come before
    // the migrations are done wait for them.
    let opened: (handle: DatabaseHandle) => void = () => {};
    const database = new Promise<DatabaseHandle>((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    database.catch(() => {}); // no request may be waiting: the failure is reported below
    // The server lives on, so its request lines go out a batch per event-loop turn.
    const context = createContext(env, { open: () => database, log: batchedJsonLogger });
    server = await startLocalServer({ port: env.PORT, context: () => context });
    handle = await openDatabase(databaseOptionsFromEnv(env));
    const { applied, total } = await migrate(handle);
    opened(handle);
    console.log(
      `database: ${describeDatabase(env, handle.driver)} (migrations: ${applied} applied now, ${total} in all)`,
    );
    console.log(`device-session-lock listening on ${server.url}`);
    return true;
  } catch (error) {
    const inUse = (error as { code?: unknown } | null)?.code === "EADDRINUSE";
    console.error(
      error instanceof ConfigError
        ? error.message
        : inUse
          ? `Port ${port} is in use: stop what listens there, or set PORT to another.`
          : error,
    );
    failed(error);
    await closeOpened();
    process.exitCode = 1;
    return false;
  }
}

// Taken from the start: a signal while the database opens or migrates waits for that to end
// rather than killing the process half way through a write, then closes both.
const started = start();
let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: closing the server and the database`);
  if (await started) await closeOpened();
};
process.once("SIGINT", () => void stop("SIGINT"));
process.once("SIGTERM", () => void stop("SIGTERM"));
