import connectPgSimple from "connect-pg-simple";
import session, { type SessionData } from "express-session";
import { createClient } from "redis";
import { route } from "../api/session-lock.js";
import { createContext } from "../lib/context.js";
import { type DatabaseHandle, openDatabase } from "../lib/db.js";
import { parseEnv } from "../lib/env.js";
import { createLockStore } from "../lib/locks.js";
import type { LockTarget } from "./load.js";
import { createRawLocks, peerPool } from "./raw-pg.js";
import { discardingLogger } from "./util.js";
import { webFloorHandler } from "./web-floor.js";

/**
 * Every in-process contender behind one interface (`LockTarget`), each with its own pool of
 * `poolMax` connections to the same database.
 */

export type Contender = LockTarget & { close(): Promise<void> };

/** The lib: `createLockStore` over the project's own node-postgres handle. */
export async function libContender(
  url: string,
  poolMax: number,
): Promise<Contender & { handle: DatabaseHandle }> {
  const handle = await openDatabase({ url, driver: "pg", poolMax });
  const store = createLockStore(handle.db);
  return {
    handle,
    get: (deviceId) => store.get(deviceId),
    set: (deviceId, agent, ttlSeconds) => store.set(deviceId, { agent, ttlSeconds }),
    clear: (deviceId) => store.clear(deviceId),
    close: () => handle.close(),
  };
}

/** The floor: raw node-postgres, named prepared statements. */
export function rawContender(url: string, poolMax: number): Contender {
  const pool = peerPool(url, poolMax);
  const raw = createRawLocks(pool);
  return { get: raw.get, set: raw.set, clear: raw.clear, close: () => pool.end() };
}

const API_URL = "http://localhost/api/session-lock";

/**
 * The `api/session-lock` handlers in-process: a `Request` in, a `Response` out (body read), on the
 * given handle, as Vercel calls them. Anything but `200` fails the run.
 */
export function handlerContender(url: string, handle: DatabaseHandle, poolMax: number): Contender {
  const env = parseEnv({ DATABASE_URL: url, DATABASE_DRIVER: "pg", DATABASE_POOL_MAX: String(poolMax) });
  const context = createContext(env, { open: async () => handle, log: discardingLogger() });
  const handlers = route(() => context);
  return webHandlerContender((request) => handlers[request.method as "GET"](request));
}

/** Drives one Web handler with the mix's requests; anything but `200` fails the run. */
function webHandlerContender(handler: (request: Request) => Promise<Response>): Contender {
  const call = async (method: string, deviceId: string, body?: { agent: string; ttlSeconds: number }) => {
    const headers: Record<string, string> = { "X-Device-ID": deviceId };
    if (body) headers["Content-Type"] = "application/json";
    const response = await handler(
      new Request(API_URL, { method, headers, body: body ? JSON.stringify(body) : null }),
    );
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${method} answered ${response.status}: ${text}`);
    return text;
  };
  return {
    get: (deviceId) => call("GET", deviceId),
    set: (deviceId, agent, ttlSeconds) => call("PUT", deviceId, { agent, ttlSeconds }),
    clear: (deviceId) => call("DELETE", deviceId),
    close: async () => {},
  };
}

/** `webFloorHandler` over the lib's store, called like the handlers (see `web-floor.ts`). */
export function webFloorContender(handle: DatabaseHandle): Contender {
  return webHandlerContender(webFloorHandler(createLockStore(handle.db)));
}

/** connect-pg-simple's store (`set` / `get` / `destroy`), the session id being the device id. */
export async function connectPgSimpleContender(url: string, poolMax: number): Promise<Contender> {
  const pool = peerPool(url, poolMax);
  const PgStore = connectPgSimple(session);
  const store = new PgStore({ pool, createTableIfMissing: true, pruneSessionInterval: false });
  const callback =
    (resolve: (value: unknown) => void, reject: (error: unknown) => void) =>
    (error?: unknown, value?: unknown) =>
      error ? reject(error) : resolve(value);
  return {
    get: (deviceId) => new Promise((resolve, reject) => store.get(deviceId, callback(resolve, reject))),
    set: (deviceId, agent, ttlSeconds) => {
      const expires = new Date(Date.now() + ttlSeconds * 1000);
      const data = {
        cookie: { originalMaxAge: ttlSeconds * 1000, expires, httpOnly: true, path: "/" },
        activeAgent: agent,
      } as unknown as SessionData;
      return new Promise((resolve, reject) => store.set(deviceId, data, callback(resolve, reject)));
    },
    clear: (deviceId) => new Promise((resolve, reject) => store.destroy(deviceId, callback(resolve, reject))),
    close: async () => {
      await store.close();
      await pool.end();
    },
  };
}

/** Redis `SET EX` / `GET` / `DEL` of the same JSON, one connection; `null` when no Redis answers. */
export async function redisContender(redisUrl: string, keyPrefix: string): Promise<Contender | null> {
  const client = createClient({ url: redisUrl, socket: { connectTimeout: 1000, reconnectStrategy: false } });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch {
    return null;
  }
  let version = 0;
  const keys = new Set<string>();
  const key = (deviceId: string) => `${keyPrefix}${deviceId}`;
  return {
    get: async (deviceId) => {
      const value = await client.get(key(deviceId));
      return value === null ? null : JSON.parse(value);
    },
    set: async (deviceId, agent, ttlSeconds) => {
      const now = Date.now();
      const lock = {
        deviceId,
        activeAgent: agent,
        lockedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
        ttlSeconds,
        version: ++version,
      };
      keys.add(key(deviceId));
      await client.set(key(deviceId), JSON.stringify(lock), {
        expiration: { type: "EX", value: ttlSeconds },
      });
      return lock;
    },
    clear: async (deviceId) => (await client.del(key(deviceId))) === 1,
    close: async () => {
      const all = [...keys];
      for (let i = 0; i < all.length; i += 1000) await client.del(all.slice(i, i + 1000));
      await client.quit();
    },
  };
}
