import { createHash, hash, timingSafeEqual } from "node:crypto";
import { type Context, defaultContext, jsonLogger } from "./context.js";
import { isDatabaseUnavailable } from "./db.js";
import { ConfigError, type Env } from "./env.js";
import { ApiError, errorChain, isWrappedQueryError, toProblem } from "./errors.js";
import type { Condition, Lock } from "./locks.js";
import { DEVICE_ID_HEADER, invalidBody } from "./validation.js";
import type * as z from "./vendor/zod-mini.js";

/** The methods a Vercel function can export. */
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
type Method = (typeof METHODS)[number];

/**
 * What a route answers: a status, a JSON body (`null`: none) and its own headers. `defineRoute`
 * makes it one `Response` with the headers every answer carries, built once and never changed
 * after (a Web `Response` whose headers are set afterwards costs a `Headers` object more).
 */
export type Reply = { status: number; body: unknown; headers: Record<string, string> };

/** A route's own work for one method: parse, call `lib/`, answer. */
export type MethodHandler = (request: Request, context: Context) => Promise<Reply>;

/**
 * What a route serves: its name (for logs) and a handler for each method it allows. HEAD answers
 * as GET, unless `getChangesState` (a cron job's GET): HEAD must be safe (RFC 9110, 9.3.2).
 */
export type RouteSpec = { name: string; getChangesState?: true } & Partial<
  Record<"GET" | "PUT" | "DELETE", MethodHandler>
>;

/** A handler for every method Vercel can route, as `api/` files export them. */
export type RouteHandlers = Record<Method, (request: Request) => Promise<Response>>;

/**
 * A route bound to a context: its method handlers, and `any` for a request of whatever method
 * (the local server's, which may carry one that no function exports: a `405` with `Allow`).
 */
export type BoundRoute = RouteHandlers & { any(request: Request): Promise<Response> };

const RETRY_AFTER_SECONDS = "2";
const CORS_ALLOW_HEADERS = "X-Device-ID, Content-Type, If-Match, If-None-Match";
const CORS_MAX_AGE_SECONDS = "600";

/**
 * Binds a route to a context and returns a handler for every method: the allowed ones (HEAD
 * answers as a safe GET), `OPTIONS` (CORS preflight) and `405` for the rest. Every response,
 * errors included, gets `Cache-Control: no-store`, CORS headers for allowed origins, a request id
 * and one JSON log line.
 */
export function defineRoute(spec: RouteSpec) {
  const handlerFor = (method: string): MethodHandler | undefined =>
    method === "HEAD"
      ? spec.getChangesState
        ? undefined
        : spec.GET
      : method === "GET" || method === "PUT" || method === "DELETE"
        ? spec[method]
        : undefined;
  const served = METHODS.filter((method) => method === "OPTIONS" || handlerFor(method));
  const allow = served.join(", ");
  // HEAD is CORS-safelisted: preflights list the others, as the contract does.
  const corsMethods = served.filter((method) => method !== "HEAD").join(", ");

  return (getContext: () => Context = defaultContext): BoundRoute => {
    const handle = async (method: string, request: Request): Promise<Response> => {
      const startedAt = performance.now();
      const requestId = request.headers.get("x-vercel-id") ?? crypto.randomUUID();
      let context: Context | undefined;
      let response: Response;
      try {
        context = getContext();
        const handler = handlerFor(method);
        let reply: Reply;
        if (method === "OPTIONS") reply = { status: 204, body: null, headers: { Allow: allow } };
        else if (handler) reply = await handler(request, context);
        else
          throw new ApiError(
            "method_not_allowed",
            `${method} is not allowed here; use ${allow}.`,
            {},
            { Allow: allow },
          );
        response = respond(reply, request, context.env, corsMethods, requestId);
      } catch (error) {
        const reply = errorReply(error, context?.log ?? jsonLogger, requestId);
        response = respond(reply, request, context?.env, corsMethods, requestId);
      }
      (context?.log ?? jsonLogger)({
        level: "info",
        msg: "request",
        method,
        route: spec.name,
        status: response.status,
        durationMs: Math.round((performance.now() - startedAt) * 100) / 100,
        requestId,
        device: deviceHash(request.headers.get(DEVICE_ID_HEADER)),
      });
      return response;
    };
    const handlers = Object.fromEntries(
      METHODS.map((method) => [method, (request: Request) => handle(method, request)]),
    ) as RouteHandlers;
    return { ...handlers, any: (request: Request) => handle(request.method, request) };
  };
}

/** Maps anything thrown to a problem; details of the unexpected go to the log only. */
function errorReply(error: unknown, log: Context["log"], requestId: string): Reply {
  if (error instanceof ApiError) return problemReply(error);
  if (error instanceof ConfigError) {
    log({ level: "error", msg: "misconfigured", requestId, error: error.message });
    return problemReply(new ApiError("misconfigured", error.message));
  }
  if (isDatabaseUnavailable(error)) {
    log({ level: "warn", msg: "database unavailable", requestId, error: describe(error) });
    return problemReply(
      new ApiError(
        "database_unavailable",
        "The database did not answer in time; try again shortly.",
        {},
        { "Retry-After": RETRY_AFTER_SECONDS },
      ),
    );
  }
  log({
    level: "error",
    msg: "unexpected error",
    requestId,
    error: describe(error),
    stack: stackOf(error),
  });
  return problemReply(
    new ApiError(
      "internal_error",
      `An unexpected error occurred; the log has it under request id ${requestId}.`,
    ),
  );
}

function stackOf(error: unknown): string | undefined {
  const own = error instanceof Error && isWrappedQueryError(error) ? error.cause : error;
  return own instanceof Error ? own.stack : undefined;
}

function describe(error: unknown): string {
  const messages = [...errorChain(error, 5)].map((current) =>
    // Drizzle's message repeats the parameters, device ids among them: keep only the query.
    isWrappedQueryError(current) ? `Failed query: ${current.query}` : current.message,
  );
  return messages.join(" <- ") || String(error);
}

/** A `problem+json` answer for an `ApiError`. */
function problemReply(error: ApiError): Reply {
  return {
    status: error.status,
    body: toProblem(error),
    headers: { "Content-Type": "application/problem+json", ...error.extras.headers },
  };
}

/**
 * A `problem+json` response for an `ApiError`, outside any route (the local server's 404s), with
 * the headers a route's answers carry too, but for CORS.
 */
export function problemResponse(error: ApiError): Response {
  const { status, body, headers } = problemReply(error);
  return new Response(JSON.stringify(body), {
    status,
    headers: answerHeaders(headers, crypto.randomUUID()),
  });
}

/** A reply's own headers and those every answer carries: `Cache-Control` and the request id. */
function answerHeaders(own: Record<string, string>, requestId: string): Record<string, string> {
  return { ...own, "Cache-Control": "no-store", "X-Request-Id": requestId };
}

/** A JSON answer. */
export function json(body: unknown, init: { status?: number; headers?: Record<string, string> } = {}): Reply {
  return {
    status: init.status ?? 200,
    body,
    headers: { "Content-Type": "application/json", ...init.headers },
  };
}

/** The one `Response` of a reply, with `Cache-Control`, the request id and CORS headers. */
function respond(
  reply: Reply,
  request: Request,
  env: Env | undefined,
  corsMethods: string,
  requestId: string,
): Response {
  const headers = answerHeaders(reply.headers, requestId);
  const configured = env?.CORS_ORIGINS;
  if (configured) addCorsHeaders(headers, request, configured, corsMethods);
  const body = reply.body === null ? null : JSON.stringify(reply.body);
  return new Response(body, { status: reply.status, headers });
}

function addCorsHeaders(
  headers: Record<string, string>,
  request: Request,
  configured: "*" | string[],
  corsMethods: string,
): void {
  headers.Vary = "Origin";
  const origin = request.headers.get("Origin");
  if (!origin || (configured !== "*" && !configured.includes(origin))) return;
  headers["Access-Control-Allow-Origin"] = origin;
  if (request.method === "OPTIONS") {
    headers["Access-Control-Allow-Methods"] = corsMethods;
    headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS;
    headers["Access-Control-Max-Age"] = CORS_MAX_AGE_SECONDS;
  } else {
    headers["Access-Control-Expose-Headers"] = "ETag, Retry-After, Date, X-Request-Id";
  }
}

/** A short, stable hash of a device id, so logs can correlate requests without holding the id. */
function deviceHash(deviceId: string | null): string | undefined {
  if (!deviceId) return undefined;
  return hash("sha256", deviceId.toLowerCase()).slice(0, 12);
}

/** The lock representation of the contract; all `null` but `deviceId` when no lock is active. */
export function lockBody(deviceId: string, lock: Lock | null) {
  return {
    deviceId,
    activeAgent: lock?.activeAgent ?? null,
    lockedAt: lock?.lockedAt.toISOString() ?? null,
    expiresAt: lock?.expiresAt.toISOString() ?? null,
    ttlSeconds: lock?.ttlSeconds ?? null,
    version: lock?.version ?? null,
  };
}

/** `200` with the representation, and `ETag: "<version>"` when a lock is active. */
export function lockResponse(deviceId: string, lock: Lock | null): Reply {
  return json(lockBody(deviceId, lock), lock ? { headers: { ETag: `"${lock.version}"` } } : {});
}

/** `412 precondition_failed` with the lock as it is now. */
export function preconditionFailed(deviceId: string, current: Lock | null, reason: string): Reply {
  const detail =
    reason === "held"
      ? "Another agent holds an active lock on this device."
      : reason === "absent"
        ? "There is no active lock on this device."
        : "The active lock does not have the version in If-Match.";
  return problemReply(new ApiError("precondition_failed", detail, { current: lockBody(deviceId, current) }));
}

const STRONG_ETAG = /^"(\d{1,18})"$/;

/**
 * Reads `If-Match` / `If-None-Match` (RFC 9110) into a lock condition. Supported: `If-None-Match: *`
 * (on set), `If-Match: "<version>"` and `If-Match: *`; anything else is `invalid_precondition`.
 */
export function readCondition(request: Request, operation: "set" | "clear"): Condition {
  const ifMatch = request.headers.get("If-Match")?.trim();
  const ifNoneMatch = request.headers.get("If-None-Match")?.trim();
  if (ifMatch !== undefined && ifNoneMatch !== undefined) {
    throw new ApiError("invalid_precondition", "Send If-Match or If-None-Match, not both.");
  }
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch !== "*" || operation !== "set") {
      throw new ApiError(
        "invalid_precondition",
        "If-None-Match is supported only as `*` when setting a lock.",
      );
    }
    return { kind: "ifAbsent" };
  }
  if (ifMatch === undefined) return { kind: "always" };
  if (ifMatch === "*") return { kind: "ifPresent" };
  const version = STRONG_ETAG.exec(ifMatch)?.[1];
  if (version === undefined) {
    throw new ApiError("invalid_precondition", 'If-Match must be one strong entity tag such as "42", or *.');
  }
  // Strong comparison is exact (RFC 9110, 8.8.3.2): a tag this service never sends ("042", or past
  // 2^53) matches no lock, so it asks for version 0, which the sequence never gives.
  const exact = String(Number(version)) === version && Number.isSafeInteger(Number(version));
  return { kind: "ifVersion", version: exact ? Number(version) : 0 };
}

/** The largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 4096;

/**
 * Reads a JSON body of at most `MAX_BODY_BYTES` and parses it with `schema`.
 * `415` unless `Content-Type: application/json`, `413` when larger, `400 invalid_body` otherwise.
 */
export async function readJson<Schema extends z.ZodMiniType>(
  request: Request,
  schema: Schema,
): Promise<z.infer<Schema>> {
  const mediaType = request.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
  if (mediaType !== "application/json") {
    throw new ApiError("unsupported_media_type", "Send the body as Content-Type: application/json.");
  }
  const text = await readLimited(request, MAX_BODY_BYTES);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ApiError("invalid_body", "The body is not valid JSON.", { fields: [] });
  }
  const result = schema.safeParse(data);
  if (!result.success) throw invalidBody(result.error);
  return result.data;
}

/** Stateless between calls (no `stream` option), so one serves every request. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

async function readLimited(request: Request, limitBytes: number): Promise<string> {
  const tooLarge = () => new ApiError("payload_too_large", `The body may be at most ${limitBytes} bytes.`);
  const declared = request.headers.get("Content-Length");
  if (declared !== null && Number(declared) > limitBytes) throw tooLarge();
  // A declared length within the limit bounds what HTTP delivers: read it whole, which servers
  // such as @hono/node-server answer from the socket without building a web stream. Without
  // one (chunked), read the stream and stop at the limit.
  const bytes =
    declared !== null ? new Uint8Array(await request.arrayBuffer()) : await readStream(request, limitBytes);
  if (bytes === null || bytes.byteLength > limitBytes) throw tooLarge();
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new ApiError("invalid_body", "The body is not valid UTF-8.", { fields: [] });
  }
}

/** The body's bytes, or `null` as soon as they pass `limitBytes`. */
async function readStream(request: Request, limitBytes: number): Promise<Uint8Array | null> {
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limitBytes) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
}

const BEARER = /^bearer +(.*)$/i;

/**
 * Checks `Authorization: Bearer <CRON_SECRET>` in constant time. Refuses to run at all
 * (`misconfigured`) when the secret is unset or shorter than 16 characters.
 */
export function requireCronSecret(request: Request, env: Env): void {
  const secret = env.CRON_SECRET;
  if (!secret || secret.length < 16) {
    throw new ApiError("misconfigured", "CRON_SECRET must be set to at least 16 characters for this route.");
  }
  // The scheme's name is case-insensitive (RFC 9110, section 11.1); without it, no secret.
  const given = BEARER.exec(request.headers.get("Authorization") ?? "")?.[1] ?? "";
  // Comparing digests keeps the comparison constant-time whatever the lengths.
  const digest = (value: string) => createHash("sha256").update(value).digest();
  if (!timingSafeEqual(digest(given), digest(secret))) {
    throw new ApiError(
      "unauthorized",
      "Send Authorization: Bearer <CRON_SECRET>.",
      {},
      { "WWW-Authenticate": 'Bearer realm="cron"' },
    );
  }
}
