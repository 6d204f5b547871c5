import { route as cronRoute } from "../../api/cron/purge-expired.js";
import { route as healthRoute } from "../../api/health.js";
import { route as openApiRoute } from "../../api/openapi.js";
import { route as sessionLockRoute } from "../../api/session-lock.js";
import { route as statsRoute } from "../../api/stats.js";
import { type Context, createContext, type LogRecord } from "../../lib/context.js";
import type { DatabaseHandle } from "../../lib/db.js";
import { parseEnv } from "../../lib/env.js";
import type { RouteHandlers } from "../../lib/http.js";

/** A secret long enough for the cron and stats routes. */
export const CRON_SECRET = "test-cron-secret-0123456789";

/** Whether an `Authorization` value carries `CRON_SECRET`: the scheme's name in any case, then one space or more (RFC 9110, section 11.1). */
export function authorizesCron(authorization: string | null): boolean {
  return (authorization ?? "").trim().replace(/^bearer +/i, "Bearer ") === `Bearer ${CRON_SECRET}`;
}

/** The `api/` routes bound to one context, called in-process with `new Request(...)`. */
export type Routes = {
  sessionLock: RouteHandlers;
  cron: RouteHandlers;
  stats: RouteHandlers;
  health: RouteHandlers;
  openapi: RouteHandlers;
  context: Context;
  /** Every log record the routes wrote. */
  logs: LogRecord[];
};

/**
 * Binds every route to a context over `database` (left open: the caller closes it) and an env
 * built from `vars` (parsed like the process env; `CRON_SECRET` set unless overridden).
 */
export function bindRoutes(
  database: Pick<DatabaseHandle, "db" | "driver" | "close">,
  vars: Record<string, string> = {},
): Routes {
  const logs: LogRecord[] = [];
  const env = parseEnv({ CRON_SECRET, ...vars });
  const context = createContext(env, { open: async () => database, log: (record) => logs.push(record) });
  const bind = (route: (getContext: () => Context) => RouteHandlers) => route(() => context);
  return {
    sessionLock: bind(sessionLockRoute),
    cron: bind(cronRoute),
    stats: bind(statsRoute),
    health: bind(healthRoute),
    openapi: bind(openApiRoute),
    context,
    logs,
  };
}

const BASE = "http://localhost";

/** A request to the session-lock route for `deviceId` (omitted when `null`). */
export function lockRequest(
  method: string,
  deviceId: string | null,
  init: { body?: unknown; headers?: Record<string, string> } = {},
): Request {
  const headers = new Headers(init.headers);
  if (deviceId !== null) headers.set("X-Device-ID", deviceId);
  let body: BodyInit | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === "string" ? init.body : JSON.stringify(init.body);
    if (!headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  }
  return new Request(`${BASE}/api/session-lock`, { method, headers, body });
}

/** A GET to a route, with `Authorization: Bearer <secret>` when `secret` is given. */
export function authorizedGet(path: string, secret?: string): Request {
  return new Request(`${BASE}${path}`, {
    headers: secret === undefined ? {} : { Authorization: `Bearer ${secret}` },
  });
}

/** A fresh device id. */
export const newDeviceId = (): string => crypto.randomUUID();
