/**
 * Case 3's contender, run as a child process (`fork` with `--import tsx`): the project's local
 * server (`startLocalServer`, the `api/` handlers over @hono/node-server) on a bench database.
 * Reports `{ port }` when listening; answers `"stats"` with its memory; stops on `"stop"`.
 */
import { batchedJsonLogger, createContext } from "../../lib/context.js";
import { databaseOptionsFromEnv, openDatabase } from "../../lib/db.js";
import { parseEnv } from "../../lib/env.js";
import { startLocalServer } from "../../scripts/server.js";
import { serveChildControl } from "./control.js";

const env = parseEnv({
  DATABASE_URL: process.env.BENCH_DATABASE_URL,
  DATABASE_DRIVER: "pg",
  DATABASE_POOL_MAX: process.env.BENCH_POOL_MAX,
});
const handle = await openDatabase(databaseOptionsFromEnv(env));
// The local server's real logger, as `npm run dev` has it: one JSON line a request to stdout,
// batched per event-loop turn, which the bench sends to /dev/null.
const context = createContext(env, { open: async () => handle, log: batchedJsonLogger });
const server = await startLocalServer({ port: 0, context: () => context, publicDir: "bench/no-public" });
serveChildControl(server.port, async () => {
  await server.close();
  await handle.close();
});
