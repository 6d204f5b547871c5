/**
 * Case 3's floor, run as a child process: a minimal `node:http` server for `/api/session-lock`
 * issuing the same prepared statements with raw node-postgres (`BENCH_STORE=raw`), or with the
 * lib's lock store (`BENCH_STORE=lib`, to split the lib's share from the HTTP framing's). It keeps
 * only what the contract cannot do without (device id check, JSON body with `agent` / `ttlSeconds`,
 * the lock body, `Cache-Control`, `ETag`); no CORS, conditions, problem+json details, logging or
 * request ids.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { openDatabase } from "../../lib/db.js";
import { createLockStore } from "../../lib/locks.js";
import { createRawLocks, peerPool, type RawLock } from "../raw-pg.js";
import { serveChildControl } from "./control.js";

const DEVICE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const AGENT = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$/;

type Locks = {
  get(deviceId: string): Promise<RawLock | null>;
  set(deviceId: string, agent: string, ttlSeconds: number): Promise<RawLock>;
  clear(deviceId: string): Promise<boolean>;
  close(): Promise<void>;
};

async function openLocks(): Promise<Locks> {
  const url = process.env.BENCH_DATABASE_URL;
  if (!url) throw new Error("BENCH_DATABASE_URL is unset: the bench starts this server with it.");
  const poolMax = Number(process.env.BENCH_POOL_MAX ?? 10);
  if (process.env.BENCH_STORE === "lib") {
    const handle = await openDatabase({ url, driver: "pg", poolMax });
    const store = createLockStore(handle.db);
    return {
      get: (deviceId) => store.get(deviceId),
      async set(deviceId, agent, ttlSeconds) {
        const result = await store.set(deviceId, { agent, ttlSeconds });
        if (!result.ok) throw new Error("an unconditional set was refused");
        return result.lock;
      },
      clear: async (deviceId) => {
        const result = await store.clear(deviceId);
        return result.ok && result.cleared;
      },
      close: () => handle.close(),
    };
  }
  const pool = peerPool(url, poolMax);
  return { ...createRawLocks(pool), close: () => pool.end() };
}

const locks = await openLocks();

function send(response: ServerResponse, status: number, body: unknown, etag?: string): void {
  const headers: Record<string, string> = { "Content-Type": "application/json", "Cache-Control": "no-store" };
  if (etag) headers.ETag = etag;
  response.writeHead(status, headers).end(JSON.stringify(body));
}

function lockBody(deviceId: string, lock: RawLock | null) {
  return {
    deviceId,
    activeAgent: lock?.activeAgent ?? null,
    lockedAt: lock?.lockedAt.toISOString() ?? null,
    expiresAt: lock?.expiresAt.toISOString() ?? null,
    ttlSeconds: lock?.ttlSeconds ?? null,
    version: lock?.version ?? null,
  };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.url !== "/api/session-lock") return send(response, 404, { code: "not_found" });
  const raw = request.headers["x-device-id"];
  if (typeof raw !== "string" || !DEVICE_ID.test(raw))
    return send(response, 400, { code: "invalid_device_id" });
  const deviceId = raw.toLowerCase();
  if (request.method === "GET") {
    const lock = await locks.get(deviceId);
    return send(response, 200, lockBody(deviceId, lock), lock ? `"${lock.version}"` : undefined);
  }
  if (request.method === "PUT") {
    const body = JSON.parse(await readBody(request)) as { agent?: unknown; ttlSeconds?: unknown };
    const ttlSeconds = body.ttlSeconds ?? 86_400;
    if (typeof body.agent !== "string" || !AGENT.test(body.agent) || !Number.isInteger(ttlSeconds)) {
      return send(response, 400, { code: "invalid_body" });
    }
    const lock = await locks.set(deviceId, body.agent, ttlSeconds as number);
    return send(response, 200, lockBody(deviceId, lock), `"${lock.version}"`);
  }
  if (request.method === "DELETE") {
    return send(response, 200, { deviceId, cleared: await locks.clear(deviceId) });
  }
  return send(response, 405, { code: "method_not_allowed" });
}

const server = createServer((request, response) => {
  handle(request, response).catch(() => send(response, 500, { code: "internal_error" }));
});
server.listen(0, "127.0.0.1", () => {
  serveChildControl((server.address() as AddressInfo).port, async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await locks.close();
  });
});
