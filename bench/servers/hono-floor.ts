/**
 * Case 3's middle rung, run as a child process: the bare Web handler of `web-floor.ts` over the
 * lib, served by @hono/node-server like the local server, without the product's routes and framing.
 */
import { serve } from "@hono/node-server";
import { openDatabase } from "../../lib/db.js";
import { createLockStore } from "../../lib/locks.js";
import { webFloorHandler } from "../web-floor.js";
import { serveChildControl } from "./control.js";

const handle = await openDatabase({
  url: process.env.BENCH_DATABASE_URL,
  driver: "pg",
  poolMax: Number(process.env.BENCH_POOL_MAX ?? 10),
});
const server = serve({ fetch: webFloorHandler(createLockStore(handle.db)), port: 0, hostname: "127.0.0.1" });
server.once("listening", () => {
  const address = server.address();
  serveChildControl(typeof address === "object" && address ? address.port : 0, async () => {
    await new Promise((resolve) => server.close(resolve));
    await handle.close();
  });
});
