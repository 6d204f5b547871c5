import type { Env } from "./env.js";
import { DEVICE_ID_PATTERN, lockRequestSchema } from "./validation.js";
import * as z from "./vendor/zod-mini.js";

/**
 * Schemas of what the API answers, and the OpenAPI 3.1 document built from them and from the
 * request schema the routes parse with. Tests validate real responses against these too.
 */

const deviceId = z.string().check(z.describe("The device id, lower-case canonical UUID."));
const nullable = <T extends z.ZodMiniType>(schema: T, description: string) =>
  z.nullable(schema).check(z.describe(description));

export const lockSchema = z.strictObject({
  deviceId,
  activeAgent: nullable(z.string(), "The agent that holds the lock; null when no lock is active."),
  lockedAt: nullable(z.iso.datetime(), "Database time of the last successful set."),
  expiresAt: nullable(z.iso.datetime(), "lockedAt + ttlSeconds, by the database clock."),
  ttlSeconds: nullable(z.int(), "Seconds the lock lives after lockedAt."),
  version: nullable(z.int(), "Fencing token: larger for every successful set; also sent as ETag."),
});

export const clearedSchema = z.strictObject({
  deviceId,
  cleared: z.boolean().check(z.describe("Whether an active lock was removed.")),
});

export const problemSchema = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.int(),
  detail: z.string(),
  code: z.enum([
    "invalid_device_id",
    "invalid_body",
    "invalid_precondition",
    "agent_not_allowed",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "precondition_failed",
    "payload_too_large",
    "unsupported_media_type",
    "misconfigured",
    "internal_error",
    "database_unavailable",
  ]),
  fields: z.optional(z.array(z.object({ field: z.string(), message: z.string() }))),
  current: z.optional(lockSchema),
});

export const purgeResultSchema = z.strictObject({
  purged: z.int(),
  batches: z.int(),
  durationMs: z.int(),
  complete: z.boolean().check(z.describe("False when PURGE_TIME_BUDGET_MS ran out first.")),
});

export const statsSchema = z.strictObject({
  activeLocks: z.int(),
  expiredAwaitingPurge: z.int(),
  byAgent: z.record(z.string(), z.int()),
  oldestLockAgeSeconds: z.nullable(z.number()),
  averageLockAgeSeconds: z.nullable(z.number()),
});

export const healthSchema = z.union([
  z.strictObject({ status: z.literal("ok"), database: z.strictObject({ latencyMs: z.number() }) }),
  z.strictObject({ status: z.literal("unavailable") }),
]);

function jsonSchema(schema: z.ZodMiniType, io: "input" | "output" = "output") {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io });
  return rest;
}

/** Response headers, documented once in `components.headers`. */
const HEADERS = {
  "Cache-Control": { description: "Every answer: no-store.", schema: { type: "string", const: "no-store" } },
  "X-Request-Id": {
    description: "The request's id, as the log line has it (Vercel's x-vercel-id when present).",
    schema: { type: "string" },
  },
  ETag: {
    description: 'The active lock\'s version as a strong entity tag, e.g. "42"; for If-Match.',
    schema: { type: "string", pattern: '^"\\d+"$' },
  },
  "Retry-After": { description: "Seconds to wait before trying again.", schema: { type: "string" } },
  Allow: { description: "The methods this path serves.", schema: { type: "string" } },
  "WWW-Authenticate": { description: 'Bearer realm="cron"', schema: { type: "string" } },
};
type HeaderName = keyof typeof HEADERS;

/** A response's headers: those every answer carries, and `extra`. */
const headers = (extra: HeaderName[]) =>
  Object.fromEntries(
    (["Cache-Control", "X-Request-Id", ...extra] as const).map((name) => [
      name,
      { $ref: `#/components/headers/${name}` },
    ]),
  );
const problem = (description: string, ...extra: HeaderName[]) => ({
  description,
  headers: headers(extra),
  content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
});
const ok = (description: string, schema: string, ...extra: HeaderName[]) => ({
  description,
  headers: headers(extra),
  content: { "application/json": { schema: { $ref: `#/components/schemas/${schema}` } } },
});
const unavailable = problem(
  "database_unavailable: the database did not answer in time; try again after Retry-After.",
  "Retry-After",
);
const failed = (misconfigured = "the environment is invalid; the detail names the variable") =>
  problem(`misconfigured (${misconfigured}) or internal_error (the log has the details under X-Request-Id).`);

type Operation = {
  summary: string;
  responses: Record<string, { description: string; headers: object; content?: object }>;
} & Record<string, unknown>;

/** HEAD as the route answers it: GET's statuses and headers, without a body. */
const headOf = ({ summary, responses, ...rest }: Operation): Operation => ({
  ...rest,
  summary: `${summary}: headers only`,
  responses: Object.fromEntries(
    Object.entries(responses).map(([status, { description, headers }]) => [status, { description, headers }]),
  ),
});
const preflight: Operation = {
  summary: "CORS preflight",
  responses: {
    "204": {
      description:
        "No content. For an Origin in CORS_ORIGINS, also Access-Control-Allow-Origin, -Allow-Methods, -Allow-Headers and -Max-Age.",
      headers: headers(["Allow"]),
    },
    "500": failed(),
  },
};

const deviceHeader = {
  name: "X-Device-ID",
  in: "header",
  required: true,
  description:
    "The device id: a UUID in canonical 8-4-4-4-12 form, any version, case-insensitive; not the nil UUID.",
  schema: { type: "string", pattern: DEVICE_ID_PATTERN.source },
};
const ifMatch = {
  name: "If-Match",
  in: "header",
  required: false,
  description: 'Only if the active lock has this version: one strong entity tag such as "42", or *.',
  schema: { type: "string" },
};
const bearer = [{ cronSecret: [] }];
const cronSecretMisconfigured =
  "CRON_SECRET unset or shorter than 16 characters, or another invalid variable, which the detail names";

/** The OpenAPI 3.1 document of the API, with the limits of this configuration. */
export function openApiDocument(env: Env) {
  const getLock: Operation = {
    summary: "Read the device's lock",
    parameters: [deviceHeader],
    responses: {
      "200": ok("The lock, or all-null fields when none is active (ETag when active).", "Lock", "ETag"),
      "400": problem("invalid_device_id"),
      "500": failed(),
      "503": unavailable,
    },
  };
  const getStats: Operation = {
    summary: "Counts and ages of the locks",
    security: bearer,
    responses: {
      "200": ok("Lock statistics by database time.", "Stats"),
      "401": problem("unauthorized", "WWW-Authenticate"),
      "500": failed(cronSecretMisconfigured),
      "503": unavailable,
    },
  };
  const getHealth: Operation = {
    summary: "One round trip to the database",
    responses: {
      "200": ok("The database answered.", "Health"),
      "500": failed(),
      "503": ok("The database did not answer within HEALTH_TIMEOUT_MS.", "Health", "Retry-After"),
    },
  };
  const getOpenApi: Operation = {
    summary: "This document",
    responses: {
      "200": { description: "OpenAPI 3.1", headers: headers([]), content: { "application/json": {} } },
      "500": failed(),
    },
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "Device session lock",
      version: "1.0.0",
      description:
        "Which sub-agent owns a device's conversation, stored in Postgres with a TTL and a fencing version. A method a path does not list answers 405 method_not_allowed with Allow.",
    },
    paths: {
      "/api/session-lock": {
        get: getLock,
        head: headOf(getLock),
        put: {
          summary: "Set the lock (unconditionally, or with If-None-Match: * / If-Match)",
          parameters: [
            deviceHeader,
            ifMatch,
            {
              name: "If-None-Match",
              in: "header",
              required: false,
              description: "* : acquire only if no active lock exists.",
              schema: { type: "string", enum: ["*"] },
            },
          ],
          requestBody: {
            required: true,
            content: { "application/json": { schema: { $ref: "#/components/schemas/LockRequest" } } },
          },
          responses: {
            "200": ok("The new lock with a new, larger version.", "Lock", "ETag"),
            "400": problem("invalid_device_id, invalid_body, invalid_precondition or agent_not_allowed"),
            "412": problem("precondition_failed, with `current`: the lock as it is now"),
            "413": problem("payload_too_large: the body exceeds 4096 bytes"),
            "415": problem("unsupported_media_type: not application/json"),
            "500": failed(),
            "503": unavailable,
          },
        },
        delete: {
          summary: "Clear the lock (idempotent; If-Match for a conditional clear)",
          parameters: [deviceHeader, ifMatch],
          responses: {
            "200": ok("Whether an active lock was removed.", "Cleared"),
            "400": problem("invalid_device_id or invalid_precondition"),
            "412": problem("precondition_failed, with `current`"),
            "500": failed(),
            "503": unavailable,
          },
        },
        options: preflight,
      },
      "/api/cron/purge-expired": {
        get: {
          summary: "Delete expired locks in batches within PURGE_TIME_BUDGET_MS (Vercel cron)",
          security: bearer,
          responses: {
            "200": ok("What was purged.", "PurgeResult"),
            "401": problem("unauthorized", "WWW-Authenticate"),
            "500": failed(cronSecretMisconfigured),
            "503": unavailable,
          },
        },
        options: preflight,
      },
      "/api/stats": { get: getStats, head: headOf(getStats), options: preflight },
      "/api/health": { get: getHealth, head: headOf(getHealth), options: preflight },
      "/api/openapi.json": { get: getOpenApi, head: headOf(getOpenApi), options: preflight },
    },
    components: {
      headers: HEADERS,
      securitySchemes: {
        cronSecret: { type: "http", scheme: "bearer", description: "Authorization: Bearer <CRON_SECRET>" },
      },
      schemas: {
        LockRequest: jsonSchema(lockRequestSchema(env.MAX_SESSION_TTL), "input"),
        Lock: jsonSchema(lockSchema),
        Cleared: jsonSchema(clearedSchema),
        Problem: jsonSchema(problemSchema),
        PurgeResult: jsonSchema(purgeResultSchema),
        Stats: jsonSchema(statsSchema),
        Health: jsonSchema(healthSchema),
      },
    },
  };
}
