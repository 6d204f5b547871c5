import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { serve } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono, type Context as HonoContext } from "hono";
import type { Context } from "../lib/context.js";
import { ApiError } from "../lib/errors.js";
import { type BoundRoute, problemResponse } from "../lib/http.js";

/**
 * An `api/` file as Vercel sees it: the URL path, the file's own path (which Vercel serves too,
 * e.g. `/api/health.ts`), and the route bound as the module binds it.
 */
type ApiModule = { path: string; filePath: string; handlers: BoundRoute };

/**
 * Finds every function in `apiDir` and maps it to its URL the way Vercel does:
 * `api/cron/purge-expired.ts` serves `/api/cron/purge-expired`; `_`-prefixed files are not routes.
 * With `context`, each route is bound to it instead of the process's default context.
 */
export async function loadApiRoutes(apiDir: string, context?: () => Context): Promise<ApiModule[]> {
  const files = (await readdir(apiDir, { recursive: true }))
    .filter((file) => /\.ts$/.test(file) && !file.endsWith(".d.ts"))
    .filter((file) => !file.split(sep).some((part) => part.startsWith("_")))
    .sort();
  return Promise.all(
    files.map(async (file) => {
      const module = await import(pathToFileURL(join(apiDir, file)).href);
      const filePath = relative(".", file).replace(/\\/g, "/");
      const route = filePath.replace(/\.ts$/, "").replace(/(^|\/)index$/, "");
      // Bound as the module's exports are (`route()`), or to `context`.
      const handlers: BoundRoute = module.route(context);
      return { path: `/api/${route}`.replace(/\/$/, ""), filePath: `/api/${filePath}`, handlers };
    }),
  );
}

export type LocalServerOptions = {
  /** Where the functions are. @default "api" */
  apiDir?: string;
  /** Static files served at `/`, when the folder exists. @default "public" */
  publicDir?: string;
  port: number;
  /** @default "127.0.0.1" */
  hostname?: string;
  /** Binds the routes to this context instead of the process's default one. */
  context?: () => Context;
};

/** Serves `api/**` and `public/` over HTTP with the same handlers Vercel runs. */
export async function startLocalServer(options: LocalServerOptions) {
  const app = new Hono();
  const aliases = await literalRewrites();
  // Each function by its exact path, so that a request for one goes straight to its handler.
  const functions = new Map<string, BoundRoute>();
  for (const { path, filePath, handlers } of await loadApiRoutes(options.apiDir ?? "api", options.context)) {
    const serve = (c: HonoContext) => handlers.any(c.req.raw);
    for (const source of [path, filePath, ...(aliases.get(path) ?? [])]) {
      // The first route of a path wins, as in Hono's router below.
      if (!functions.has(source)) functions.set(source, handlers);
      app.all(source, serve);
    }
  }
  const publicDir = options.publicDir ?? "public";
  if (existsSync(publicDir)) app.on(["GET", "HEAD"], "/*", serveStatic({ root: publicDir }));
  app.notFound((c) => problemResponse(new ApiError("not_found", `Nothing is served at ${c.req.path}.`)));
  // Hono routes the rest: static files, 404s and function paths written otherwise (percent-encoded).
  const fetch = (request: Request) => {
    const handlers = functions.get(pathOf(request.url));
    return handlers ? handlers.any(request) : app.fetch(request);
  };

  const server = serve({ fetch, port: options.port, hostname: options.hostname ?? "127.0.0.1" });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.hostname ?? "127.0.0.1"}:${port}`,
    port,
    /**
     * Stops accepting, ends idle keep-alive connections, waits for the rest and ends them after
     * `graceMs`: a client that never finishes its request (a stalled upload) would hold the close
     * for as long as it stays, since a closing server no longer times requests out.
     * @param graceMs @default 2000
     */
    close: (graceMs = 2000) =>
      new Promise<void>((resolve, reject) => {
        const cut = setTimeout(() => {
          if ("closeAllConnections" in server) server.closeAllConnections();
        }, graceMs);
        server.close((error) => {
          clearTimeout(cut);
          if (error) reject(error);
          else resolve();
        });
        if ("closeIdleConnections" in server) server.closeIdleConnections();
      }),
  };
}

/** The rewrites of vercel.json with a literal source, as destination -> sources. */
async function literalRewrites(): Promise<Map<string, string[]>> {
  const aliases = new Map<string, string[]>();
  if (!existsSync("vercel.json")) return aliases;
  const config = JSON.parse(await readFile("vercel.json", "utf8")) as {
    rewrites?: { source: string; destination: string }[];
  };
  for (const { source, destination } of config.rewrites ?? []) {
    if (/[:(*]/.test(source)) continue;
    aliases.set(destination, [...(aliases.get(destination) ?? []), source]);
  }
  return aliases;
}

/** The path of an absolute request URL as it was sent (`http://host:port/path?query` -> `/path`). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  const query = url.indexOf("?", start);
  return url.slice(start, query === -1 ? undefined : query);
}
