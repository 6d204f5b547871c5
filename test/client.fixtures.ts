import { once } from "node:events";
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";
import { createContext, type LogRecord } from "../lib/context.js";
import type { DatabaseHandle } from "../lib/db.js";
import { parseEnv } from "../lib/env.js";
import { startLocalServer } from "../scripts/server.js";

/**
 * Servers for the client and router tests: the real API over a socket, and small servers that
 * misbehave on purpose. Every one listens on an ephemeral port of 127.0.0.1.
 */

/** The real API (`api/` through `startLocalServer`) on a context over `open`; `requests`: its log lines. */
export async function startApi(options: {
  open: () => Promise<DatabaseHandle>;
  env?: Record<string, string>;
}) {
  const requests: LogRecord[] = [];
  const env = parseEnv({ PGLITE_DIR: "memory://", ...options.env });
  const context = createContext(env, {
    open: options.open,
    log: (record) => {
      if (record.msg === "request") requests.push(record);
    },
  });
  // A folder that does not exist: the API only, no static files.
  const server = await startLocalServer({ port: 0, context: () => context, publicDir: "test/no-public" });
  return { url: server.url, requests, close: () => server.close() };
}

/** A TCP server that accepts connections and never answers. */
export async function startSilentServer() {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // Request heads, counted by their request line: fetch may open a spare connection that
    // never carries a request (undici reconnects as soon as an aborted request's socket closes).
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      requests += chunk.match(/^[A-Z]+ \S+ HTTP\/1\.1\r$/gm)?.length ?? 0;
    });
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    /** How many requests arrived (and got no answer). */
    get requests() {
      return requests;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

/** One scripted answer. */
export type Scripted = { status: number; headers?: Record<string, string>; body: string };

/** An HTTP server that answers its requests with `script`, in order (the last one repeats). */
export async function startScriptedServer(script: Scripted[]) {
  const seen: { at: number; method: string; headers: IncomingMessage["headers"] }[] = [];
  const server = createHttpServer((request: IncomingMessage, response: ServerResponse) => {
    request.resume();
    const answer = script[Math.min(seen.length, script.length - 1)] as Scripted;
    seen.push({ at: performance.now(), method: request.method ?? "", headers: request.headers });
    response.writeHead(answer.status, answer.headers).end(answer.body);
  });
  return { ...(await listenLocally(server)), seen };
}

/** The problem body the API sends when the database is down. */
export function databaseUnavailable(retryAfterSeconds?: number): Scripted {
  return {
    status: 503,
    headers: {
      "Content-Type": "application/problem+json",
      ...(retryAfterSeconds === undefined ? {} : { "Retry-After": String(retryAfterSeconds) }),
    },
    body: JSON.stringify({
      type: "urn:device-session-lock:problem:database_unavailable",
      title: "Database unavailable",
      status: 503,
      detail: "The database did not answer in time; try again shortly.",
      code: "database_unavailable",
    }),
  };
}

/** A `200` with a lock representation. */
export function lockAnswer(deviceId: string, activeAgent: string | null): Scripted {
  const now = Date.now();
  const lock = activeAgent
    ? {
        activeAgent,
        lockedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 60_000).toISOString(),
        ttlSeconds: 60,
        version: 7,
      }
    : { activeAgent: null, lockedAt: null, expiresAt: null, ttlSeconds: null, version: null };
  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ deviceId, ...lock }),
  };
}

/** What the lossy proxy does with a request: pass it on, or drop it before or after the API ran it. */
export type Loss = "none" | "before" | "after";

/**
 * An HTTP proxy to `target` that drops the connection of the requests `lose` picks (by their
 * order, from 0): `before` without passing them on, `after` once the API has answered them, so
 * that the API did the work and the caller never hears of it (a lost answer).
 */
export async function startLossyProxy(target: string, lose: (index: number, method: string) => Loss) {
  const seen: { method: string; loss: Loss; status: number | null }[] = [];
  const server = createHttpServer(async (request: IncomingMessage, response: ServerResponse) => {
    const method = request.method ?? "GET";
    const loss = lose(seen.length, method);
    const entry: (typeof seen)[number] = { method, loss, status: null };
    seen.push(entry);
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (loss === "before") return void request.socket.destroy();
    const headers = Object.entries(request.headers).flatMap(([name, value]) =>
      typeof value === "string" && !["host", "connection", "content-length"].includes(name)
        ? [[name, value]]
        : [],
    ) as [string, string][];
    const answer = await fetch(`${target}${request.url}`, {
      method,
      headers,
      body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
    });
    const body = await answer.text();
    entry.status = answer.status;
    if (loss === "after") return void request.socket.destroy();
    response.writeHead(answer.status, Object.fromEntries(answer.headers)).end(body);
  });
  return { ...(await listenLocally(server)), seen };
}

/** Listens on an ephemeral port of 127.0.0.1; `close` also ends open connections. */
async function listenLocally(server: HttpServer) {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
