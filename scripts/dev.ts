/**
 * `npm run dev`: the `api/` functions and `public/` on http://localhost:$PORT, on the embedded
 * database unless DATABASE_URL is set, with migrations applied at start.
 */
import { batchedJsonLogger, createContext } from "../lib/context.js";
import { databaseOptionsFromEnv, openDatabase } from "../lib/db.js";
import { ConfigError, env as readEnv } from "../lib/env.js";
import { migrate } from "../lib/migrate.js";
import { describeDatabase } from "./describe-database.js";
import { startLocalServer } from "./server.js";

try {
  const env = readEnv();
  const handle = await openDatabase(databaseOptionsFromEnv(env));
  const { applied, total } = await migrate(handle);
  // The server lives on, so its request lines go out a batch per event-loop turn.
  const context = createContext(env, { open: async () => handle, log: batchedJsonLogger });
  const server = await startLocalServer({ port: env.PORT, context: () => context });
  console.log(
    `database: ${describeDatabase(env, handle.driver)} (migrations: ${applied} applied now, ${total} in all)`,
  );
  console.log(`device-session-lock listening on ${server.url}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: closing the server and the database`);
    await server.close();
    await handle.close();
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exitCode = 1;
}
